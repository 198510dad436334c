"""imgcls train."""

from __future__ import annotations

import typer

from ..data.cache import CACHE_MODES
from ..errors import ConfigError
from ..train import TrainConfig, fit
from .console import ConsoleReporter, console, parse_options


def train(
    model: str = typer.Option("basic-cnn", "--model", "-m", help="Model name (imgcls models)."),
    data: str = typer.Option("shapes", "--data", "-d",
                             help="A folder of class sub-folders, or a dataset name like shapes."),
    epochs: int = typer.Option(10, "--epochs", "-e", help="Training epochs."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
    lr: float = typer.Option(2e-3, "--lr", help="Learning rate (Adam)."),
    img_size: int | None = typer.Option(None, "--img-size",
                                           help="Input size (default: the model's)."),
    augment: str = typer.Option("seed", "--augment", "-a",
                                help='Augmentations, e.g. "flip,shear=0.2,zoom=0.2", or none.'),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: str = typer.Option("runs", "--out", "-o", help="Folder that holds run folders."),
    name: str | None = typer.Option(None, "--name", help="Run folder name."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Reuse an existing run folder."),
    val_split: float = typer.Option(0.2, "--val-split",
                                    help="Validation fraction when the data has no val folder."),
    cache: str = typer.Option("memory", "--cache", help="Decoded-image cache: memory or disk."),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes."),
    model_opt: list[str] = typer.Option([], "--model-opt", help="Model option key=value."),
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option key=value."),
) -> None:
    """Train a model and write runs/<name>/ with best.safetensors and metrics.jsonl."""
    if cache not in CACHE_MODES[:2]:
        raise ConfigError(f"Unknown --cache {cache!r}.", "Use --cache memory or --cache disk.")
    config = TrainConfig(
        model=model, data=data, epochs=epochs, batch_size=batch_size, lr=lr, img_size=img_size,
        augment=augment, seed=seed, device=device, out=out, name=name, exist_ok=exist_ok,
        val_split=val_split, cache=cache, workers=workers,
        model_options=parse_options(model_opt, "--model-opt"),
        data_options=parse_options(data_opt, "--data-opt"),
    )
    result = fit(config, ConsoleReporter())
    if result.skipped:
        console.print(f"{len(result.skipped)} unreadable images were skipped.")
