"""imgcls infer."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ConfigError
from ..infer import iter_inputs, open_model, predict_stream
from ..predictions import FORMATS, write_failures, write_predictions
from .console import console, err_console


def infer(
    model: Path = typer.Argument(..., help="An .onnx file or a best.safetensors checkpoint."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders or quoted globs."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Predictions file (default: stdout)."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or jsonl."),
    top_k: int = typer.Option(1, "--top-k", "-k", help="How many ranked labels per image."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: int | None = typer.Option(None, "--workers", help="Decode threads."),
) -> None:
    """Classify images with a model; writes path, label, confidence (and top-k) per image."""
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown --format {fmt!r}.", "Use --format csv or --format jsonl.")
    if batch_size < 1 or top_k < 1:
        raise ConfigError("--batch-size and --top-k must be at least 1.", "For example: -b 64.")
    runner = open_model(model, device)
    k = min(top_k, len(runner.manifest["classes"]))
    results = predict_stream(runner, iter_inputs(inputs), batch_size=batch_size, top_k=k,
                             workers=workers)
    summary = write_predictions(results, output, fmt, k)
    for failure in summary.failures[:20]:
        err_console.print(f"[yellow]unreadable:[/yellow] {failure.path}: {failure.reason}",
                          highlight=False)
    if summary.failed and output is not None:
        errors_path = output.with_name(output.name + ".errors.csv")
        write_failures(summary.failures, errors_path)
        err_console.print(f"{summary.failed} unreadable images listed in {errors_path}")
    target = console if output is not None else err_console
    target.print(f"{summary.images} images classified in {summary.seconds:.2f}s "
                 f"({summary.images_per_second:.0f} img/s), {summary.failed} unreadable"
                 + (f"; predictions in {output}" if output else ""), highlight=False)
