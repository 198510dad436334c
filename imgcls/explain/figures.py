"""The pictures of ``imgcls explain``: CAM overlays, the vote chart, feature maps, filters.

Figures use matplotlib's Agg canvas directly (no pyplot, no display); overlays are
plain numpy, so report.html can make them by the dozen at no cost.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..report import new_figure, png_bytes
from .api import Explanation
from .feature_maps import FeatureMap

CAM_ALPHA = 0.5
CAM_COLOURS = "jet"  # pytorch-grad-cam's and the CAM papers' colour map
# Figures are drawn at 100 dpi (report.new_figure) and shown at their own size: explain.html
# (pages.css) never scales them down on a 1,280 px screen, so a 10 pt label stays 14 px, as
# legible as the page's text. Wider figures would be scaled down, and their labels with them.
TITLE_PT, TEXT_PT = 11, 10
MAX_WIDTH_PX = 1100
PANEL_IN, VOTES_IN, COLUMNS = 2.4, 3.2, 3  # an image panel, the vote chart, panels a row


def overlay(pixels: np.ndarray, cam: np.ndarray, alpha: float = CAM_ALPHA) -> np.ndarray:
    """The map (H x W, [0, 1]) in colour over the image (H x W x 3 uint8), as uint8."""
    from matplotlib import colormaps

    colours = colormaps[CAM_COLOURS](np.clip(cam, 0.0, 1.0))[..., :3]
    mixed = (1.0 - alpha) * pixels.astype(np.float32) / 255.0 + alpha * colours
    return np.clip(mixed * 255.0 + 0.5, 0, 255).astype(np.uint8)


def explanation_figure(explanation: Explanation, top_k: int = 5) -> Any:
    """The image, one CAM overlay per explained class (3 panels a row), and the top-k
    "vote" bar chart beside them."""
    images = 1 + len(explanation.cams)
    rows, columns = _grid(images, COLUMNS)
    figure = new_figure(columns * PANEL_IN + VOTES_IN + 0.2, rows * (PANEL_IN + 0.4) + 0.1)
    grid = figure.add_gridspec(rows, columns + 1,
                               width_ratios=[PANEL_IN] * columns + [VOTES_IN])
    panels = [figure.add_subplot(grid[i // columns, i % columns]) for i in range(images)]
    panels[0].imshow(explanation.pixels)
    panels[0].set_title("model input", fontsize=TITLE_PT)
    for ax, (name, cam) in zip(panels[1:], explanation.cams.items(), strict=True):
        ax.imshow(overlay(explanation.pixels, cam))
        ax.set_title(f"{explanation.method}: {name}", fontsize=TITLE_PT)
    for ax in panels:
        ax.set_axis_off()
    _votes(figure.add_subplot(grid[:, -1]), explanation, top_k)
    return figure


def explanation_png(explanation: Explanation, top_k: int = 5) -> bytes:
    """:func:`explanation_figure` as PNG bytes."""
    return png_bytes(explanation_figure(explanation, top_k))


def _votes(ax: Any, explanation: Explanation, top_k: int) -> None:
    ranked = explanation.top(top_k)[::-1]  # best at the top of the chart
    names = [name for name, _ in ranked]
    ax.barh(range(len(ranked)), [p for _, p in ranked],
            color=["tab:orange" if n == explanation.predicted else "tab:blue" for n in names])
    ax.set_yticks(range(len(ranked)), names, fontsize=TEXT_PT)
    ax.tick_params(axis="x", labelsize=TEXT_PT)
    ax.set_xlim(0, 1)
    ax.set_title("votes (probability)", fontsize=TITLE_PT)
    for i, (_, p) in enumerate(ranked):
        ax.text(min(p + 0.02, 0.8), i, f"{p:.0%}", va="center", fontsize=TEXT_PT)


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def feature_map_figure(feature: FeatureMap, columns: int = 8) -> Any:
    """A grid of the layer's first channels (each on its own colour scale)."""
    rows, cols = _grid(len(feature.maps), columns)
    figure = new_figure(1.1 * cols + 0.2, 1.1 * rows + 0.5)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(feature.maps):
            ax.imshow(feature.maps[index], cmap="viridis")
    c, h, w = feature.shape
    figure.suptitle(f"{feature.label}: {c} x {h} x {w}, first {len(feature.maps)} channels",
                    fontsize=TITLE_PT)
    return figure


def feature_map_png(feature: FeatureMap, columns: int = 8) -> bytes:
    return png_bytes(feature_map_figure(feature, columns))


def filters_figure(name: str, tiles: np.ndarray, columns: int = 8) -> Any:
    """The first conv layer's kernels as RGB tiles; ``name`` is what the title calls it."""
    rows, cols = _grid(len(tiles), columns)
    figure = new_figure(max(0.8 * cols + 0.2, 3.6), 0.8 * rows + 0.5)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(tiles):
            ax.imshow(tiles[index], interpolation="nearest")
    _, kh, kw, _ = tiles.shape
    figure.suptitle(f"{name}: {len(tiles)} filters of {kh} x {kw} x 3", fontsize=TITLE_PT)
    return figure


def filters_png(name: str, tiles: np.ndarray, columns: int = 8) -> bytes:
    return png_bytes(filters_figure(name, tiles, columns))
