"""imgcls export onnx."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..export.parity import DEFAULT_TOLERANCE, FP16_TOLERANCE
from .console import console


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
) -> None:
    """Export a checkpoint to ONNX, checking parity with PyTorch before reporting success."""
    from ..export.onnx import export_onnx  # imports torch

    result = export_onnx(checkpoint, output, opset=opset, calibration=calibration,
                         tolerance=tolerance, fp16=fp16, embed_preprocessing=embed_preprocessing,
                         softmax=softmax)
    parity = result.parity
    kind = "logit" if parity.outputs == "logits" else "probability"
    console.print(escape(
        f"parity on {parity.images} images from {parity.source}: max |Δ{kind}| "
        f"{parity.max_abs_diff:.2e} (tolerance {parity.tolerance:g}), top-1 agreement "
        f"{parity.top1_agreement:.1%}, top-5 overlap {parity.top5_overlap:.1%}"),
        highlight=False)
    console.print(escape(f"report: {result.report_path}"), highlight=False)
    console.print(escape(f"wrote {result.path}"), highlight=False)
