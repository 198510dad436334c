"""ONNX export with the manifest in metadata and a parity gate against PyTorch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import MANIFEST_KEY, LoadedCheckpoint, atomic_write_bytes, load_checkpoint
from .errors import DataError, ExportError, ImgclsError
from .images import load_pixels
from .infer import iter_inputs, make_session

PARITY_IMAGES = 64
DEFAULT_TOLERANCE = 1e-4


@dataclass
class ParityReport:
    images: int
    source: str
    max_abs_diff: float
    top1_agreement: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement == 1.0


def _calibration_paths(loaded: LoadedCheckpoint, calibration: str | None,
                       limit: int) -> tuple[list[Path], str]:
    """Real images for the parity check: --calibration, else the training data's val split."""
    if calibration:
        return list(iter_inputs([calibration]))[:limit], calibration
    info = loaded.manifest.get("dataset", {})
    data = info.get("data")
    if not data:
        return [], "generated images"
    from .data import load_dataset

    try:
        dataset = load_dataset(data, info.get("options") or {})
    except ImgclsError as exc:
        return [], f"generated images ({data} is unavailable: {exc.message})"
    paths = [path for path, _ in (dataset.val or dataset.train)]
    step = max(1, len(paths) // limit)
    return paths[::step][:limit], f"{data} (validation split)"


def _generated_images(folder: Path, count: int) -> list[Path]:
    """Shapes and noise written as PNGs, so parity still goes through the shared decoder."""
    from .data.shapes import SHAPES, draw_shape

    rng = np.random.default_rng(1234)
    paths = []
    for i in range(count):
        path = folder / f"parity_{i:03d}.png"
        draw_shape(SHAPES[i % len(SHAPES)], 96, rng).save(path)
        paths.append(path)
    return paths


def _inputs(loaded: LoadedCheckpoint, calibration: str | None, tmp: Path,
            limit: int) -> tuple[np.ndarray, str]:
    paths, source = _calibration_paths(loaded, calibration, limit)
    if len(paths) < 32 and not calibration:
        paths = _generated_images(tmp, limit)
    if not paths:
        raise DataError(f"No calibration images found in {calibration}.",
                        "Pass --calibration with a folder of images.")
    pixels = np.stack([load_pixels(p, loaded.preprocess) for p in paths])
    return loaded.preprocess.apply(pixels), source


def _export_graph(model: torch.nn.Module, example: torch.Tensor, path: Path,
                  opset: int | None) -> None:
    batch = torch.export.Dim("batch", min=1)
    # The exporter narrates its steps on stdout; keep the CLI's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=["input"], output_names=["logits"],
            dynamic_shapes=({0: batch},), opset_version=opset, external_data=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program.", "Upgrade torch.")
    program.save(str(path))


def _add_metadata(path: Path, manifest: dict[str, Any]) -> bytes:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, json.dumps(manifest)
    proto.producer_name = "imgcls"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"The exported graph failed onnx.checker: {exc}",
                          "Report this with the model name and options.") from exc
    return proto.SerializeToString()


def check_parity(model: torch.nn.Module, onnx_path: Path, inputs: np.ndarray, source: str,
                 tolerance: float) -> ParityReport:
    with torch.inference_mode():
        expected = model(torch.from_numpy(inputs)).numpy()
    session = make_session(onnx_path, "cpu")
    actual = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    return ParityReport(
        images=len(inputs), source=source,
        max_abs_diff=float(np.abs(expected - actual).max()),
        top1_agreement=float((expected.argmax(1) == actual.argmax(1)).mean()),
        tolerance=tolerance,
    )


@dataclass
class ExportResult:
    path: Path
    parity: ParityReport
    report_path: Path


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    opset: int | None = None,
    calibration: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportResult:
    """Export a checkpoint to ONNX; the file appears only if parity with PyTorch holds."""
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.float().eval()
    output = Path(output)
    manifest = dict(loaded.manifest) | {"export": {"format": "onnx", "outputs": "logits",
                                                   "input": "float32 NCHW"}}
    with tempfile.TemporaryDirectory(prefix="imgcls-export-") as tmp_name:
        tmp = Path(tmp_name)
        inputs, source = _inputs(loaded, calibration, tmp, PARITY_IMAGES)
        raw = tmp / "raw.onnx"
        _export_graph(model, torch.from_numpy(inputs[:2]), raw, opset)
        final = tmp / "model.onnx"
        final.write_bytes(_add_metadata(raw, manifest))
        parity = check_parity(model, final, inputs, source, tolerance)
        report_path = output.with_name(output.name + ".parity.json")
        atomic_write_bytes(report_path, json.dumps(asdict(parity) | {"passed": parity.passed},
                                                   indent=2).encode())
        if not parity.passed:
            raise ExportError(
                f"Parity check failed on {parity.images} images: max |Δlogit| "
                f"{parity.max_abs_diff:.3g} (tolerance {tolerance:g}), top-1 agreement "
                f"{parity.top1_agreement:.1%}. {output} was not written.",
                f"See {report_path}; try another --opset.",
            )
        atomic_write_bytes(output, final.read_bytes())
    return ExportResult(output, parity, report_path)
