"""imgcls export onnx."""

from __future__ import annotations

from pathlib import Path

import typer

from ..export import DEFAULT_TOLERANCE, export_onnx
from .console import console


def onnx(
    checkpoint: Path = typer.Argument(..., help="A best.safetensors checkpoint."),
    output: Path = typer.Option(Path("model.onnx"), "--output", "-o", help="Where to write."),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: torch's)."),
    calibration: str | None = typer.Option(
        None, "--calibration", help="Images for the parity check (default: the val split)."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, "--tolerance",
                                    help="Largest allowed |logit difference| vs PyTorch."),
) -> None:
    """Export a checkpoint to ONNX, checking parity with PyTorch before reporting success."""
    result = export_onnx(checkpoint, output, opset=opset, calibration=calibration,
                         tolerance=tolerance)
    parity = result.parity
    console.print(
        f"parity on {parity.images} images from {parity.source}: max |Δlogit| "
        f"{parity.max_abs_diff:.2e} (tolerance {parity.tolerance:g}), top-1 agreement "
        f"{parity.top1_agreement:.1%}", highlight=False)
    console.print(f"wrote {result.path}", highlight=False)
