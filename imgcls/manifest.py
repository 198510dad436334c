"""The manifest that makes a model self-describing, and reading it back from a file.

Nothing here imports torch: ``imgcls infer`` and ``imgcls inspect`` on an .onnx
file start without it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, with_config
from pydantic.json_schema import GenerateJsonSchema
from typing_extensions import NotRequired, TypedDict

from .errors import CheckpointError, ManifestError
from .schema import MAX_DEPTH, STRICT, Number, UniqueNames, validate
from .specs import Preprocess
from .version import __version__

MANIFEST_KEY = "imgcls.manifest"
FORMAT = "imgcls.checkpoint"
FORMAT_VERSION = 1
_REDO = "Re-export or re-train the model with imgcls."


def make_manifest(
    model_name: str,
    model_options: dict[str, Any],
    classes: list[str],
    preprocess: Preprocess,
    training: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    task: str = "multiclass",
    thresholds: list[float] | None = None,
) -> dict[str, Any]:
    extra = {"thresholds": [float(t) for t in thresholds]} if thresholds is not None else {}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "imgcls_version": __version__,
        "model": {"name": model_name, "options": model_options},
        "classes": list(classes),
        "preprocess": preprocess.to_dict(),
        "training": training or {},
        "dataset": dataset or {},
        "task": task,
        **extra,
    }


# --------------------------------------------------------------------------- schema
# One class per section. Sections keep keys they do not declare (a newer writer's
# additions); a declared key, when present, must have its type.


@with_config(STRICT)
class ModelSection(TypedDict):
    name: str
    options: NotRequired[dict[str, Any]]


@with_config(STRICT)
class Parity(TypedDict):
    """How the exported graph agreed with PyTorch before it was written."""

    source: str
    images: Number
    max_abs_diff: Number
    top1_agreement: Number


@with_config(STRICT)
class Calibration(TypedDict):
    images: Number
    source: str
    fingerprint: str


@with_config(STRICT)
class Gate(TypedDict):
    images: Number
    top1_agreement: Number
    min_agreement: Number


@with_config(STRICT)
class Quantization(TypedDict):
    """int8 exports only; a file without it is simply not quantised."""

    method: str
    calibration: Calibration
    gate: Gate
    weight_bits: NotRequired[Annotated[int, Field(ge=7, le=8)]]  # absent before 7-bit


@with_config(STRICT)
class Export(TypedDict):
    """Written by imgcls export onnx; absent from checkpoints."""

    preprocessing: NotRequired[Annotated[str, Field(
        description="external: the graph takes float32 NCHW input normalised as "
                    "preprocess says; embedded: it takes uint8 NHWC RGB pixels")]]
    outputs: NotRequired[str]
    precision: NotRequired[str]
    input_name: NotRequired[str]
    output_name: NotRequired[str]
    tta: NotRequired[str]
    parity: NotRequired[Parity]
    quantization: NotRequired[Quantization]


@with_config(STRICT | {"title": "imgcls manifest"})
class Manifest(TypedDict):
    """The JSON stored under imgcls.manifest in a checkpoint's or an ONNX file's metadata."""

    format: NotRequired[Literal["imgcls.checkpoint"]]
    format_version: NotRequired[Annotated[int, Field(ge=1, le=FORMAT_VERSION)]]
    imgcls_version: NotRequired[str]
    model: ModelSection
    classes: Annotated[UniqueNames, Field(
        min_length=2, description="Class names in the order of the model's outputs.")]
    preprocess: Preprocess
    training: NotRequired[dict[str, Any]]
    dataset: NotRequired[dict[str, Any]]
    export: NotRequired[Export]
    versions: NotRequired[dict[str, str]]
    task: NotRequired[Annotated[Literal["multiclass", "multilabel"], Field(
        description="multiclass (also when absent): softmax, one label per image; "
                    "multilabel: a sigmoid probability per class, a set of labels per image")]]
    thresholds: NotRequired[Annotated[list[Annotated[Number, Field(ge=0, le=1)]], Field(
        description="multilabel: a class is predicted when its probability is at or above "
                    "its threshold (one per class, in class order)")]]


@functools.cache
def _schema() -> TypeAdapter:
    return TypeAdapter(Manifest)


class _Published(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Max Abs Diff" for max_abs_diff says nothing


def json_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (published in docs/deployment.md)."""
    schema = _schema().json_schema(schema_generator=_Published)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --------------------------------------------------------------------------- task
# "multiclass": softmax, one label per image (also when "task" is absent: older files).
# "multilabel": sigmoid, a set of labels per image; "thresholds" holds one decision
# threshold per class, in class order, chosen on the validation split.
TASKS = ("multiclass", "multilabel")
DEFAULT_THRESHOLD = 0.5


def manifest_task(manifest: dict[str, Any]) -> str:
    """The model's task; manifests written before tasks existed are multiclass."""
    return manifest.get("task", "multiclass")


def manifest_thresholds(manifest: dict[str, Any]) -> list[float]:
    """Per-class decision thresholds of a multi-label model (0.5 where none are stored)."""
    stored = manifest.get("thresholds")
    return list(stored) if stored is not None else [DEFAULT_THRESHOLD] * len(manifest["classes"])


def _check_task(manifest: dict[str, Any], source: str) -> None:
    """What the schema cannot say: thresholds belong to a multi-label model, one a class."""
    if "thresholds" not in manifest:
        return
    if manifest_task(manifest) != "multilabel":
        raise _fail(source, "thresholds are only meaningful for a multilabel model")
    if len(manifest["thresholds"]) != len(manifest["classes"]):
        raise _fail(source, "thresholds must hold one number per class")


def _fail(source: str, why: str) -> ManifestError:
    return ManifestError(f"{source} has an invalid imgcls manifest: {why}.", _REDO)


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


def validate_manifest(manifest: Any, source: str) -> dict[str, Any]:
    """Check a manifest's shape, types and limits; raise ManifestError naming ``source``."""
    if not isinstance(manifest, dict):
        raise _fail(source, "not a JSON object")
    if _depth(manifest) > MAX_DEPTH:
        raise _fail(source, f"nested more than {MAX_DEPTH} levels deep")
    version = manifest.get("format_version")
    if type(version) is int and version > FORMAT_VERSION:  # its other fields may be new too
        raise ManifestError(f"{source} uses manifest format {version}, newer than this imgcls "
                            f"(which reads up to {FORMAT_VERSION}).",
                            "Upgrade imgcls: pip install -U imgcls.")
    validate(_schema(), manifest, ManifestError,
             f"{source} has an invalid imgcls manifest: ", _REDO)
    _check_task(manifest, source)
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
