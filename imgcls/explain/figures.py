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


def overlay(pixels: np.ndarray, cam: np.ndarray, alpha: float = CAM_ALPHA) -> np.ndarray:
    """The map (H x W, [0, 1]) in colour over the image (H x W x 3 uint8), as uint8."""
    from matplotlib import colormaps

    colours = colormaps[CAM_COLOURS](np.clip(cam, 0.0, 1.0))[..., :3]
    mixed = (1.0 - alpha) * pixels.astype(np.float32) / 255.0 + alpha * colours
    return np.clip(mixed * 255.0 + 0.5, 0, 255).astype(np.uint8)


def explanation_png(explanation: Explanation, top_k: int = 5) -> bytes:
    """The image, one CAM overlay per explained class, and the top-k "vote" bar chart."""
    panels = 2 + len(explanation.cams)
    figure = new_figure(2.6 * panels + 0.6, 2.9)
    axes = figure.subplots(1, panels, width_ratios=[1] * (panels - 1) + [1.4])
    axes[0].imshow(explanation.pixels)
    axes[0].set_title("model input", fontsize=9)
    for ax, (name, cam) in zip(axes[1:], explanation.cams.items(), strict=False):
        ax.imshow(overlay(explanation.pixels, cam))
        ax.set_title(f"{explanation.method}: {name}", fontsize=9)
    for ax in axes[:-1]:
        ax.set_axis_off()
    _votes(axes[-1], explanation, top_k)
    return png_bytes(figure)


def _votes(ax: Any, explanation: Explanation, top_k: int) -> None:
    ranked = explanation.top(top_k)[::-1]  # best at the top of the chart
    names = [name for name, _ in ranked]
    ax.barh(range(len(ranked)), [p for _, p in ranked],
            color=["tab:orange" if n == explanation.predicted else "tab:blue" for n in names])
    ax.set_yticks(range(len(ranked)), names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_title("votes (probability)", fontsize=9)
    for i, (_, p) in enumerate(ranked):
        ax.text(min(p + 0.02, 0.8), i, f"{p:.0%}", va="center", fontsize=8)


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def feature_map_png(feature: FeatureMap, columns: int = 8) -> bytes:
    """A grid of the layer's first channels (each on its own colour scale)."""
    rows, cols = _grid(len(feature.maps), columns)
    figure = new_figure(1.1 * cols + 0.2, 1.1 * rows + 0.45)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(feature.maps):
            ax.imshow(feature.maps[index], cmap="viridis")
    c, h, w = feature.shape
    figure.suptitle(f"{feature.name} ({feature.module}): {c} x {h} x {w}, first "
                    f"{len(feature.maps)} channels", fontsize=9)
    return png_bytes(figure)


def filters_png(name: str, tiles: np.ndarray, columns: int = 8) -> bytes:
    """The first conv layer's kernels as RGB tiles."""
    rows, cols = _grid(len(tiles), columns)
    figure = new_figure(0.8 * cols + 0.2, 0.8 * rows + 0.45)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(tiles):
            ax.imshow(tiles[index], interpolation="nearest")
    _, kh, kw, _ = tiles.shape
    figure.suptitle(f"{name}: {len(tiles)} filters of {kh} x {kw} x 3", fontsize=9)
    return png_bytes(figure)
