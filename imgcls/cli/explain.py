"""imgcls explain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from ..errors import ConfigError, DataError, require_extra
from ..outputs import check_out_dir, input_paths
from .console import console, err_console, printable
from .data import output_is_a_file
from .inputs import warn_if_labelled_for_another_model

if TYPE_CHECKING:
    from ..explain.page import Written

METHOD_HELP = "CAM method: gradcam, gradcam++, layercam, hirescam or eigencam (class-agnostic)."


def explain(
    checkpoint: Path = typer.Argument(
        ..., help="A best.safetensors checkpoint (not an .onnx file: CAMs need gradients)."),
    images: list[str] = typer.Argument(
        None, help="Image files, folders or quoted globs (one image with --feature-maps).",
        show_default=False),
    out_dir: Path = typer.Option(Path("explain"), "--out-dir",
                                 help="Folder for the PNGs and explain.html."),
    output: str | None = output_is_a_file("explain"),
    method: str = typer.Option("gradcam", "--method", help=METHOD_HELP),
    layer: str | None = typer.Option(
        None, "--layer", help="Layer to compute CAMs on, as the captions name it (relu2, "
                              "conv2, pool2) or by module name (layer4); default: the "
                              "model's last conv block. A wrong name lists the valid ones."),
    target: str | None = typer.Option(
        None, "--target", help="Also explain this class (the predicted one always is)."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Classes in the vote bar chart."),
    feature_maps: bool = typer.Option(
        False, "--feature-maps", help="Draw one image's activations after each conv, "
                                      "activation and pool instead of CAMs."),
    filters: bool = typer.Option(False, "--filters",
                                 help="Draw the first conv layer's kernels as RGB tiles."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Show what a model looks at: CAM overlays with its votes, feature maps, filters."""
    from ..explain.api import Explainer  # imports torch
    from ..explain.page import write_explanations, write_page

    images = list(images or [])
    _check(images, feature_maps, filters, top_k)
    if images and not feature_maps:  # CAMs; feature maps and filters need no extra
        require_extra("pytorch_grad_cam")
    _check_paths(checkpoint, images, out_dir)
    explainer = Explainer(checkpoint, method, layer, device)
    if images and not feature_maps:  # a wrong --layer or --target fails before any work
        explainer.target_index(target)
        explainer.layer  # noqa: B018
    written = write_explanations(explainer, images, out_dir, feature_maps=feature_maps,
                                 filters=filters, target=target, top_k=top_k)
    for failure in written.failures:
        # Paths and reasons are data: text, never markup.
        err_console.print(f"[yellow]unreadable:[/yellow] {escape(printable(failure.path))}: "
                          f"{escape(printable(failure.reason))}", highlight=False)
    if images and not feature_maps and not written.explained:
        raise DataError("None of the images could be read, so nothing was explained.",
                        "Check the paths; the unreadable files are listed above.")
    page = write_page(written, str(checkpoint), explainer.spec.name)
    _summary(written, explainer.method, page)


def _check_paths(checkpoint: Path, images: list[str], out_dir: Path) -> None:
    """Outputs apart from the inputs; a warning when the images are labelled for another
    model (the checkpoint's data and classes are named)."""
    files, folders = input_paths(images)
    check_out_dir("--out-dir", out_dir, [checkpoint, *files], folders,
                  writes=["explain.html", "filters.png"], holds_inputs=True)
    warn_if_labelled_for_another_model(checkpoint, images)


def _check(images: list[str], feature_maps: bool, filters: bool, top_k: int) -> None:
    if not images and not filters:
        raise ConfigError("Missing IMAGE: name the images to explain.",
                          "For example: imgcls explain runs/basic-cnn/best.safetensors cat.jpg "
                          "(or --filters alone for the first layer's kernels).")
    if feature_maps and len(images) != 1:
        raise ConfigError(f"--feature-maps draws one image, got {len(images)}.",
                          "Pass a single image file with --feature-maps.")
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}.", "For example: -k 5.")


def _summary(written: Written, method: str, page: Path) -> None:
    from ..explain.names import named

    parts = []
    if written.explained:
        first = written.explained[0][0]
        layer = first.layer_name or named({}, first.layer)
        count = len(written.explained)
        parts.append(f"{count} image{'s' if count != 1 else ''} explained ({method}, layer "
                     f"{layer.option}: {layer.what})")
    if written.features:
        ends = [f.layer.short if f.layer else f.name for f in (written.features[0][0],
                                                               written.features[-1][0])]
        parts.append(f"feature maps of {len(written.features)} layers ({ends[0]} to "
                     f"{ends[1]})")
    if written.filters:
        layer, shape, _ = written.filters
        parts.append(f"the {shape[0]} filters of {layer.short}")
    if written.failures:
        parts.append(f"{len(written.failures)} unreadable")
    console.print(escape(f"{', '.join(parts)}; see {page}"), highlight=False)
