"""imgcls export onnx."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from ..export.int8 import CALIB_IMAGES, MIN_AGREEMENT, MIN_HELD_OUT
from ..export.parity import DEFAULT_TOLERANCE, FP16_TOLERANCE
from ..manifest import read_manifest
from ..multilabel import require_multiclass
from .console import console, count

if TYPE_CHECKING:
    from ..export.onnx import ExportResult


# The int8 options, here so that the command's signature stays readable.
INT8 = typer.Option(
    False, "--int8",
    help="Static int8 quantisation (QDQ, per-channel weights), written only if the int8 "
         "model agrees with the float one on held-out images (--min-agreement).")
CALIBRATE = typer.Option(
    None, "--calibrate", metavar="DATA",
    help="Images for --int8: a folder (searched recursively), a .csv or a dataset name "
         "(default: the training data the checkpoint records). Split once: "
         f"--calib-images calibrate, the rest (at least {MIN_HELD_OUT}) test.")
CALIB_IMAGES_OPTION = typer.Option(
    None, "--calib-images", show_default=False,
    help=f"Images that calibrate --int8 (default {CALIB_IMAGES}).")
MIN_AGREEMENT_OPTION = typer.Option(
    None, "--min-agreement", show_default=False,
    help=f"Least top-1 agreement of int8 with float on the held-out images (default "
         f"{MIN_AGREEMENT:g}; above 1 always fails).")


def onnx(
    checkpoint: Path = typer.Argument(..., help="A best.safetensors checkpoint."),
    output: Path = typer.Option(Path("model.onnx"), "--output", "-o", help="Where to write."),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: torch's)."),
    fp16: bool = typer.Option(False, "--fp16",
                              help="float16 weights and arithmetic, for GPU deployment "
                                   "(float32 inputs and outputs)."),
    embed_preprocessing: bool = typer.Option(
        False, "--embed-preprocessing",
        help="The model takes uint8 NHWC RGB pixels at its input size and scales and "
             "normalises them itself."),
    softmax: bool = typer.Option(False, "--softmax", help="Output probabilities, not logits."),
    calibration: str | None = typer.Option(
        None, "--calibration",
        help="Images for the parity check (default: the training data's val split, else "
             "generated images)."),
    tolerance: float | None = typer.Option(
        None, "--tolerance",
        help=f"Largest allowed |output difference| vs PyTorch (default {DEFAULT_TOLERANCE:g}, "
             f"{FP16_TOLERANCE:g} with --fp16)."),
    int8: bool = INT8,
    calibrate: str | None = CALIBRATE,
    calib_images: int | None = CALIB_IMAGES_OPTION,
    min_agreement: float | None = MIN_AGREEMENT_OPTION,
    tta: str = typer.Option("none", "--tta", metavar="[none|flip]",
                            help="flip: the graph averages each image's "
                            "logits with its mirror image's (test-time augmentation)."),
) -> None:
    """Export a checkpoint to ONNX, checking parity with PyTorch before reporting success."""
    from ..export.onnx import export_onnx  # imports torch

    if softmax and Path(checkpoint).is_file():  # a multi-label graph outputs sigmoids
        require_multiclass(read_manifest(checkpoint), "--softmax")
    result = export_onnx(checkpoint, output, opset=opset, calibration=calibration,
                         tolerance=tolerance, fp16=fp16, embed_preprocessing=embed_preprocessing,
                         softmax=softmax, int8=int8, calibrate=calibrate,
                         calib_images=calib_images, min_agreement=min_agreement, tta=tta)
    _print_result(result)


def _print_result(result: ExportResult) -> None:
    parity = result.parity
    kind = "logit" if parity.outputs == "logits" else "probability"
    console.print(escape(
        f"parity on {count(parity.images, 'image')} from {parity.source}: max |Δ{kind}| "
        f"{parity.max_abs_diff:.2e} (tolerance {parity.tolerance:g}), top-1 agreement "
        f"{parity.top1_agreement:.1%}, top-5 overlap {parity.top5_overlap:.1%}"),
        highlight=False)
    quantization = result.quantization
    if quantization:
        console.print(escape(
            f"int8: calibrated on {count(quantization.calibration_images, 'image')} from "
            f"{quantization.source}, fingerprint {quantization.calibration_fingerprint}; "
            f"{quantization.summary()}"), highlight=False)
    console.print(escape(f"report: {result.report_path}"), highlight=False)
    console.print(escape(f"wrote {result.path}"), highlight=False)
