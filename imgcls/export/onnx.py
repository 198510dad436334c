"""ONNX export: a self-describing file (the manifest in metadata) behind a parity gate.

Options: ``opset``; ``fp16`` weights and arithmetic (inputs and outputs stay
float32; parity is checked against the float32 PyTorch model with a looser
tolerance); ``embed_preprocessing`` (the graph takes uint8 NHWC RGB pixels at
the model's input size and scales and normalises them itself); ``softmax``
(probabilities out instead of logits); ``int8`` (static QDQ quantisation behind
an accuracy gate against the float model, see int8.py).

The parity gate runs PyTorch and onnxruntime on the same real images, decoded by
the shared decoder, and refuses to write a model whose outputs disagree.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import platform
import tempfile
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import LoadedCheckpoint, load_checkpoint
from ..data.loader import NormaliseLayer
from ..errors import DataError, ExportError, ImgclsError
from ..images import load_pixels
from ..infer.providers import make_session
from ..infer.runners import check_tta
from ..infer.sources import iter_paths
from ..io import atomic_write_bytes
from ..manifest import MANIFEST_KEY, manifest_task, manifest_thresholds, onnx_opset
from ..specs import Preprocess
from ..version import __version__
from .int8 import (
    CalibrationPlan,
    Int8Options,
    Int8Report,
    int8_options,
    list_images,
    quantise_and_gate,
    split_images,
)
from .parity import (
    CALIBRATION_SCAN,
    DEFAULT_TOLERANCE,
    FP16_MIN_TOP1,
    FP16_TOLERANCE,
    PARITY_IMAGES,
    ParityReport,
    checked_outputs,
    compare_outputs,
)


@dataclass(frozen=True)
class ExportOptions:
    opset: int | None = None
    fp16: bool = False
    embed_preprocessing: bool = False
    softmax: bool = False
    int8: bool = False
    tta: str = "none"  # "flip": the graph averages each image's logits with its mirror's
    multilabel: bool = False  # a sigmoid per class; flip then averages probabilities

    @property
    def precision(self) -> str:
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"

    @property
    def outputs(self) -> str:
        return "probabilities" if self.softmax or self.multilabel else "logits"


class Deployable(torch.nn.Module):
    """The checkpoint's model with the export options wrapped around it."""

    def __init__(self, model: torch.nn.Module, preprocess: Preprocess,
                 options: ExportOptions) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half() if options.fp16 else model
        self.fp16, self.softmax = options.fp16, options.softmax
        self.flip = options.tta == "flip"
        self.multilabel = options.multilabel
        # Embedded, the graph normalises with the very module training used.
        self.normalise = NormaliseLayer(preprocess) if options.embed_preprocessing else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise is not None:  # uint8 NHWC pixels in
            x = self.normalise(x.permute(0, 3, 1, 2))
        y = self._logits(x)
        if self.multilabel:  # probabilities per class; the mirror's averaged with them
            y = torch.sigmoid(y)
            return (y + torch.sigmoid(self._logits(x.flip(-1)))) / 2 if self.flip else y
        if self.flip:  # NCHW: mirror the width
            y = (y + self._logits(x.flip(-1))) / 2
        return torch.softmax(y, dim=1) if self.softmax else y

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float() if self.fp16 else self.model(x)


# --------------------------------------------------------------------------- parity inputs


def _recorded_dataset(loaded: LoadedCheckpoint) -> tuple[Any, str]:
    """The training data the manifest names, loaded again, and its name; or None and why not."""
    info = loaded.manifest.get("dataset", {})
    data = info.get("data")
    if not data:
        return None, "the checkpoint records no training data"
    from ..data import load_dataset

    try:
        return load_dataset(data, info.get("options") or {}), data
    except ImgclsError as exc:
        return None, f"{data} is unavailable: {exc.message}"


def _calibration_paths(loaded: LoadedCheckpoint, calibration: str | None,
                       limit: int) -> tuple[list[str], str]:
    """Real images for the parity check: --calibration, else the training data's val split."""
    if calibration:
        # Spread over the folder (sorted by class folder), not its first classes only.
        found = list(islice(iter_paths([calibration]), CALIBRATION_SCAN))
        return found[::max(1, len(found) // limit)][:limit], calibration
    dataset, data = _recorded_dataset(loaded)
    if dataset is None:
        recorded = loaded.manifest.get("dataset", {}).get("data")
        return [], f"generated images ({data})" if recorded else "generated images"
    paths = [str(path) for path, _ in (dataset.val or dataset.train)]
    step = max(1, len(paths) // limit)
    return paths[::step][:limit], f"{data} (validation split)"


def int8_plan(loaded: LoadedCheckpoint, options: Int8Options) -> CalibrationPlan:
    """Calibration and held-out images: --calibrate DATA, else the recorded training data."""
    if options.calibrate:
        paths, source = list_images(options.calibrate)
    else:
        dataset, data = _recorded_dataset(loaded)
        if dataset is None:
            raise DataError(f"--int8 needs calibration images, and {data}.",
                            "Pass --calibrate with a folder of images like those the model "
                            "will see.")
        paths = [str(path) for path, _ in [*dataset.train, *dataset.val]]
        source = f"{data} (training data)"
    return split_images(paths, source, options.calib_images)


def _generated_images(folder: Path, count: int) -> list[str]:
    """Shapes written as PNGs, so parity still goes through the shared decoder."""
    from ..data.shapes import SHAPES, ShapesOptions, draw_shape

    rng = np.random.default_rng(1234)
    size = ShapesOptions().size
    paths = []
    for i in range(count):
        path = folder / f"parity_{i:03d}.png"
        draw_shape(SHAPES[i % len(SHAPES)], size, rng).save(path)
        paths.append(str(path))
    return paths


def parity_pixels(loaded: LoadedCheckpoint, calibration: str | None, tmp: Path,
                  limit: int = PARITY_IMAGES) -> tuple[np.ndarray, str]:
    """uint8 NHWC pixels of the parity images, and where they came from."""
    paths, source = _calibration_paths(loaded, calibration, limit)
    if len(paths) < 32 and not calibration:
        paths, source = _generated_images(tmp, limit), "generated images"
    if not paths:
        raise DataError(f"No calibration images found in {calibration}.",
                        "Pass --calibration with a folder of images.")
    return np.stack([load_pixels(p, loaded.preprocess) for p in paths]), source


# --------------------------------------------------------------------------- the gate


def check_parity(model: torch.nn.Module, onnx_path: Path, inputs: np.ndarray, source: str,
                 tolerance: float, *, onnx_inputs: np.ndarray | None = None,
                 min_top1: float = 1.0, outputs: str = "logits") -> ParityReport:
    """Compare ``model(inputs)`` (PyTorch) with the ONNX file on ``onnx_inputs`` (or inputs)."""
    with torch.inference_mode():
        expected = model(torch.from_numpy(inputs)).float().numpy()
    session = make_session(onnx_path, "cpu")
    feed = inputs if onnx_inputs is None else onnx_inputs
    actual = session.run(None, {session.get_inputs()[0].name: feed})[0].astype(np.float32)
    return compare_outputs(expected, actual, source, tolerance, min_top1=min_top1,
                           outputs=outputs)


# --------------------------------------------------------------------------- the file


def _export_graph(model: torch.nn.Module, example: torch.Tensor, path: Path,
                  opset: int | None, names: tuple[str, str]) -> None:
    batch = torch.export.Dim("batch", min=1)
    # The exporter narrates its steps on stdout; keep the CLI's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=[names[0]], output_names=[names[1]],
            dynamic_shapes=({0: batch},), opset_version=opset, external_data=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program.", "Upgrade torch.")
    program.save(str(path))


def _load_checked(path: Path) -> Any:
    import onnx

    proto = onnx.load(str(path))
    proto.producer_name = "imgcls"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"The exported graph failed onnx.checker: {exc}",
                          "Report this with the model name and options.") from exc
    return proto


def _with_manifest(proto: Any, manifest: dict[str, Any]) -> bytes:
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, json.dumps(manifest)
    return proto.SerializeToString()


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"imgcls": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}


def _export_section(options: ExportOptions, preprocess: Preprocess, opset: int,
                    names: tuple[str, str]) -> dict[str, Any]:
    height, width = preprocess.size
    return {
        "format": "onnx", "opset": opset, "precision": options.precision,
        "preprocessing": "embedded" if options.embed_preprocessing else "external",
        "input": (f"uint8 NHWC RGB {height}x{width}" if options.embed_preprocessing
                  else "float32 NCHW"),
        "input_name": names[0], "outputs": options.outputs, "output_name": names[1],
        "tta": options.tta,
    }


@dataclass
class ExportResult:
    path: Path
    parity: ParityReport
    report_path: Path
    quantization: Int8Report | None = None


def _build(loaded: LoadedCheckpoint, options: ExportOptions, pixels: np.ndarray,
           tmp: Path) -> tuple[Any, dict[str, Any]]:
    """Export the wrapped model; returns the checked graph and its manifest."""
    preprocess = loaded.preprocess
    names = ("pixels" if options.embed_preprocessing else "input", options.outputs)
    deployable = Deployable(loaded.model, preprocess, options).eval()
    example = pixels[:2] if options.embed_preprocessing else preprocess.apply(pixels[:2])
    _export_graph(deployable, torch.from_numpy(example), tmp / "raw.onnx", options.opset, names)
    proto = _load_checked(tmp / "raw.onnx")
    manifest = dict(loaded.manifest) | {
        "export": _export_section(options, preprocess, onnx_opset(proto), names),
        "versions": versions()}
    return proto, manifest


def _gate(loaded: LoadedCheckpoint, options: ExportOptions, candidate: Path,
          pixels: np.ndarray, source: str, tolerance: float) -> ParityReport:
    """The float32 PyTorch model (plain preprocessing) against the candidate file."""
    reference = Deployable(loaded.model, loaded.preprocess,
                           ExportOptions(softmax=options.softmax, tta=options.tta,
                                         multilabel=options.multilabel)).eval()
    return check_parity(reference, candidate, loaded.preprocess.apply(pixels), source,
                        tolerance, onnx_inputs=pixels if options.embed_preprocessing else None,
                        min_top1=FP16_MIN_TOP1 if options.fp16 else 1.0,
                        outputs=options.outputs)


def _quantised(loaded: LoadedCheckpoint, options: ExportOptions, candidate: Path,
               plan: CalibrationPlan, quant: Int8Options,
               manifest: dict[str, Any]) -> tuple[Any, Int8Report]:
    """The int8 graph of the float candidate (checked) and its gate report."""
    preprocess = loaded.preprocess
    to_input = (lambda pixels: pixels) if options.embed_preprocessing else preprocess.apply
    int8_path, report = quantise_and_gate(candidate, plan, preprocess,
                                          manifest["export"]["input_name"], to_input, quant)
    proto = _load_checked(int8_path)
    manifest["export"]["opset"] = onnx_opset(proto)
    return proto, report


def _candidate(loaded: LoadedCheckpoint, options: ExportOptions, calibration: str | None,
               tolerance: float, quant: Int8Options | None, plan: CalibrationPlan | None
               ) -> tuple[Any, dict[str, Any], ParityReport, Int8Report | None]:
    """The graph to write, its manifest, its parity report and (int8) its gate report
    (multi-label: sigmoid outputs, and an int8 gate on label sets at the thresholds)."""
    options = replace(options, multilabel=manifest_task(loaded.manifest) == "multilabel")
    if quant and options.multilabel:
        quant = replace(quant, thresholds=tuple(manifest_thresholds(loaded.manifest)))
    quantization = None
    with tempfile.TemporaryDirectory(prefix="imgcls-export-") as tmp_name:
        tmp = Path(tmp_name)
        pixels, source = parity_pixels(loaded, calibration, tmp)
        proto, manifest = _build(loaded, options, pixels, tmp)
        candidate = tmp / "model.onnx"
        candidate.write_bytes(_with_manifest(proto, manifest))
        parity = _gate(loaded, options, candidate, pixels, source, tolerance)
        if parity.passed and quant and plan:
            proto, quantization = _quantised(loaded, options, candidate, plan, quant, manifest)
    return proto, manifest, parity, quantization


def _parity_refused(parity: ParityReport, output: Path, report_path: Path) -> ExportError:
    return ExportError(
        f"Parity check failed on {parity.images} images: max |Δ{parity.outputs}| "
        f"{parity.max_abs_diff:.3g} (tolerance {parity.tolerance:g}), top-1 agreement "
        f"{parity.top1_agreement:.1%}. {output} was not written.",
        f"See {report_path}; try another --opset.")


def _int8_refused(report: Int8Report, output: Path) -> ExportError:
    return ExportError(
        f"The int8 gate failed: {report.summary()}. {output} was not written.",
        "Calibrate on more images like those the model will see (--calibrate, "
        "--calib-images), or export without --int8.")


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    opset: int | None = None,
    calibration: str | None = None,
    tolerance: float | None = None,
    fp16: bool = False,
    embed_preprocessing: bool = False,
    softmax: bool = False,
    int8: bool = False,
    calibrate: str | None = None,
    calib_images: int | None = None,
    min_agreement: float | None = None,
    tta: str = "none",
) -> ExportResult:
    """Export a checkpoint to ONNX; the file appears only if parity with PyTorch holds.

    The parity report is written next to ``output`` (``<output>.parity.json``) in
    either case; if writing fails (a full disk), no file is left behind.
    ``tolerance`` defaults to 1e-4 (5e-2 with ``fp16``). With ``int8`` the float
    model is quantised after its parity check (see int8.py); when the int8 gate
    fails, nothing at all is written. ``tta="flip"`` builds the mirror-image average
    of ``imgcls infer --tta flip`` into the graph.
    """
    output, report_path = checked_outputs(output, [checkpoint, calibration, calibrate])
    quant = int8_options(int8, calibrate, calib_images, min_agreement, fp16)
    options = ExportOptions(opset, fp16, embed_preprocessing, softmax, quant is not None,
                            check_tta(tta))
    loaded = load_checkpoint(checkpoint)
    loaded.model.float().eval()
    if tolerance is None:
        tolerance = FP16_TOLERANCE if fp16 else DEFAULT_TOLERANCE
    plan = int8_plan(loaded, quant) if quant else None  # bad DATA fails before the slow work
    proto, manifest, parity, quantization = _candidate(loaded, options, calibration, tolerance,
                                                       quant, plan)
    report_dict = parity.to_dict() | ({"int8": quantization.to_dict()} if quantization else {})
    report = json.dumps(report_dict, indent=2).encode()
    if not parity.passed:
        atomic_write_bytes(report_path, report)  # it explains the refusal: kept on purpose
        raise _parity_refused(parity, output, report_path)
    if quantization and not quantization.passed:
        raise _int8_refused(quantization, output)  # the error carries every figure
    manifest["export"]["parity"] = {
        key: value for key, value in parity.to_dict().items() if key != "outputs"}
    if quantization:
        manifest["export"]["quantization"] = quantization.manifest_section()
    _write_outputs(output, _with_manifest(proto, manifest), report_path, report)
    return ExportResult(output, parity, report_path, quantization)


def _write_outputs(output: Path, model: bytes, report_path: Path, report: bytes) -> None:
    """The report, then the model; if either write fails (disk full), neither remains."""
    atomic_write_bytes(report_path, report)
    try:
        atomic_write_bytes(output, model)
    except BaseException:
        report_path.unlink(missing_ok=True)
        raise
