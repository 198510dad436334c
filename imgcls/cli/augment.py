"""imgcls augment preview."""

from __future__ import annotations

from pathlib import Path

import typer

from ..outputs import check_outputs, input_paths
from ..registry import get_model
from ..train.config import DEFAULT_AUGMENT
from .console import console, count, parse_options
from .data import data_option, pick_data, positional_data


def preview(
    data: str | None = data_option("A folder of class sub-folders, a .csv/.tsv file, or a dataset "
                                    "name (default: shapes, as for imgcls train)."),
    data_arg: str | None = positional_data(),
    output: Path = typer.Option(Path("augment-preview.png"), "--output", "-o",
                                help="Where to write the grid image."),
    augment: str = typer.Option(DEFAULT_AUGMENT, "--augment", "-a",
                                help='Augmentations, e.g. "flip,rotate=15", or a preset: '
                                     "none, seed, light, strong."),
    model: str = typer.Option("basic-cnn", "--model", "-m",
                              help="Model whose input size and preprocessing to use."),
    img_size: int | None = typer.Option(None, "--img-size", help="Input size override."),
    images: int = typer.Option(6, "--images", "-n", help="Rows: training images shown."),
    variants: int = typer.Option(6, "--variants", help="Augmented versions of each image."),
    seed: int = typer.Option(0, "--seed", help="Random seed (which images, which draws)."),
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option key=value."),
) -> None:
    """Write a grid of augmented training images: each row one image, the original first."""
    from ..data.preview import augment_preview, write_preview  # imports torch

    data = pick_data(data, data_arg, default="shapes")
    files, folders = input_paths([data])
    check_outputs({"-o": output}, files, folders)
    spec = get_model(model).spec
    preprocess = spec.preprocess.with_size(img_size) if img_size else spec.preprocess
    grid = augment_preview(data, augment, preprocess, images=images, variants=variants,
                           seed=seed, options=parse_options(data_opt, "--data-opt"))
    path = write_preview(grid, output)
    console.print(f"wrote {path} ({grid.width}x{grid.height}): {count(images, 'image')} x "
                  f"{count(variants, 'variant')} of --augment {augment!r}", highlight=False)
