"""The manifest that makes a model self-describing, and reading it back from a file.

Nothing here imports torch: ``imgcls infer`` and ``imgcls inspect`` on an .onnx
file start without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import CheckpointError, ManifestError
from .specs import Preprocess
from .version import __version__

MANIFEST_KEY = "imgcls.manifest"
FORMAT = "imgcls.checkpoint"
FORMAT_VERSION = 1


def make_manifest(
    model_name: str,
    model_options: dict[str, Any],
    classes: list[str],
    preprocess: Preprocess,
    training: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "imgcls_version": __version__,
        "model": {"name": model_name, "options": model_options},
        "classes": list(classes),
        "preprocess": preprocess.to_dict(),
        "training": training or {},
        "dataset": dataset or {},
    }


# A manifest nests a few levels (parity inside export); far deeper means a hostile file,
# and printing or re-encoding it would hit Python's recursion limit.
MAX_DEPTH = 32
_REAL = (int, float)


def _fail(source: str, why: str) -> ManifestError:
    return ManifestError(f"{source} has an invalid imgcls manifest: {why}.",
                         "Re-export or re-train the model with imgcls.")


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value``, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _is_real(value: Any) -> bool:
    return isinstance(value, _REAL) and not isinstance(value, bool)


def _check_version(manifest: dict[str, Any], source: str) -> None:
    version = manifest.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise _fail(source, f"format_version must be an integer, got {version!r}")
    if version < 1:
        raise _fail(source, f"format_version must be at least 1, got {version}")
    if version > FORMAT_VERSION:
        raise ManifestError(f"{source} uses manifest format {version}, newer than this imgcls "
                            f"(which reads up to {FORMAT_VERSION}).",
                            "Upgrade imgcls: pip install -U imgcls.")
    if manifest.get("format", FORMAT) != FORMAT:
        raise _fail(source, f"format is {manifest.get('format')!r}, not {FORMAT!r}")


def _check_sections(manifest: dict[str, Any], source: str) -> None:
    """The optional sections that inspect, export and infer read field by field."""
    for key in ("export", "versions", "dataset"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise _fail(source, f"{key} must be an object")
    export = manifest.get("export", {})
    for key in ("preprocessing", "outputs", "precision", "input_name", "output_name", "tta"):
        if key in export and not isinstance(export[key], str):
            raise _fail(source, f"export.{key} must be a string")
    if "parity" in export:
        parity = export["parity"]
        if not isinstance(parity, dict) or not isinstance(parity.get("source"), str) or not all(
                _is_real(parity.get(k)) for k in ("max_abs_diff", "top1_agreement", "images")):
            raise _fail(source, "export.parity must hold max_abs_diff, top1_agreement and "
                                "images as numbers and source as text")
    if "quantization" in export:
        _check_quantization(export["quantization"], source)


def _check_quantization(section: Any, source: str) -> None:
    """export.quantization (int8 exports only; files without it are simply not quantised)."""
    section = section if isinstance(section, dict) else {}
    calibration, gate = section.get("calibration"), section.get("gate")
    if not (isinstance(section.get("method"), str) and isinstance(calibration, dict)
            and isinstance(gate, dict) and _is_real(calibration.get("images"))
            and all(isinstance(calibration.get(k), str) for k in ("source", "fingerprint"))
            and all(_is_real(gate.get(k)) for k in ("images", "top1_agreement",
                                                     "min_agreement"))
            and type(section.get("weight_bits", 8)) is int  # absent before 7-bit weights
            and section.get("weight_bits", 8) in (7, 8)):
        raise _fail(source, "export.quantization must hold method as text, calibration "
                            "images (a number), source and fingerprint (text), the gate's "
                            "images, top1_agreement and min_agreement as numbers, and "
                            "weight_bits 7 or 8")


def validate_manifest(manifest: Any, source: str) -> dict[str, Any]:
    """Check a manifest's shape, types and limits; raise ManifestError naming ``source``."""
    if not isinstance(manifest, dict):
        raise _fail(source, "not a JSON object")
    if _depth(manifest) > MAX_DEPTH:
        raise _fail(source, f"nested more than {MAX_DEPTH} levels deep")
    _check_version(manifest, source)
    model = manifest.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise _fail(source, "missing model name")
    if not isinstance(model.get("options", {}), dict):
        raise _fail(source, "model options are not an object")
    classes = manifest.get("classes")
    if (not isinstance(classes, list) or len(classes) < 2
            or not all(isinstance(c, str) for c in classes)):
        raise _fail(source, "classes must be a list of at least two names")
    if len(set(classes)) != len(classes):
        raise _fail(source, "class names are not unique")
    if not isinstance(manifest.get("preprocess"), dict):
        raise _fail(source, "missing preprocessing")
    try:
        Preprocess.from_dict(manifest["preprocess"])
    except ManifestError as exc:
        raise ManifestError(f"{source}: {exc.message}", exc.hint) from exc
    _check_sections(manifest, source)
    return manifest


def parse_manifest(text: str, source: str) -> dict[str, Any]:
    try:
        manifest = json.loads(text)
    except RecursionError as exc:
        raise _fail(source, "nested too deeply to read") from exc
    except (json.JSONDecodeError, TypeError) as exc:
        raise ManifestError(f"{source} has a manifest that is not valid JSON.",
                              "The file is damaged; re-export it.") from exc
    return validate_manifest(manifest, source)


def _graph_io(values: Any) -> list[dict[str, Any]]:
    import onnx

    described = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        described.append({"name": value.name, "shape": shape,
                          "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name})
    return described


def onnx_opset(proto: Any) -> int:
    """The default-domain opset an ONNX model was written for."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


# A safetensors header holds tensor names, shapes and offsets plus the manifest:
# far below this for any model; a larger length field means a damaged file.
MAX_HEADER_BYTES = 100 * 1024 * 1024


def _not_safetensors(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} is not an imgcls checkpoint (not a safetensors file).",
                           "Pass a .safetensors file written by `imgcls train`, or an .onnx file.")


def read_safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a .safetensors file, read without loading any tensor."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}",
                              "Pass a best.safetensors file from a runs/<name>/ folder.")
    with path.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if not 2 <= length <= min(MAX_HEADER_BYTES, path.stat().st_size - 8):
            raise _not_safetensors(path)
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _not_safetensors(path) from exc
    if not isinstance(header, dict):
        raise _not_safetensors(path)
    return header


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The validated manifest of a checkpoint or an .onnx file; imports no torch."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return _read_onnx(path)[0]
    metadata = read_safetensors_header(path).get("__metadata__") or {}
    if not isinstance(metadata, dict) or MANIFEST_KEY not in metadata:
        raise ManifestError(f"{path} is a safetensors file without an imgcls manifest.",
                            "Pass a checkpoint written by `imgcls train`.")
    return parse_manifest(metadata[MANIFEST_KEY], str(path))


def _read_onnx(path: Path) -> tuple[dict[str, Any], Any]:
    import onnx
    from google.protobuf.message import DecodeError as ProtobufError

    if not path.is_file():
        raise CheckpointError(f"Model file not found: {path}",
                              "Pass an .onnx file or a best.safetensors checkpoint.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (ProtobufError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable ONNX file: {exc}",
                              "Pass an .onnx file written by `imgcls export onnx`.") from exc
    props = {p.key: p.value for p in proto.metadata_props}
    return manifest_from_props(props, path), proto


def manifest_from_props(props: dict[str, str], path: str | os.PathLike) -> dict[str, Any]:
    """The manifest in an ONNX model's metadata_props (as a dict)."""
    if MANIFEST_KEY not in props:
        raise ManifestError(f"{path} has no imgcls manifest in its metadata.",
                            "Export the model with `imgcls export onnx`.")
    return parse_manifest(props[MANIFEST_KEY], str(path))


def inspect_model(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an .onnx file (plus its graph's inputs and outputs) or a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Model file not found: {path}",
                              "Pass an .onnx file or a best.safetensors checkpoint.")
    if path.suffix.lower() != ".onnx":
        return {"file": str(path), "manifest": read_manifest(path)}
    manifest, proto = _read_onnx(path)
    return {"file": str(path), "manifest": manifest,
            "graph": {"opset": onnx_opset(proto), "producer": proto.producer_name,
                      "inputs": _graph_io(proto.graph.input),
                      "outputs": _graph_io(proto.graph.output)}}
