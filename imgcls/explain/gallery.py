"""Grad-CAM overlays for report.html's most confident mistakes, in one batched pass.

The report is written at the end of every run, so this stays cheap: the pixels are
the run's already-decoded validation images, the maps come from :func:`grad_cams`
(no pytorch-grad-cam import), and the overlays are numpy blends saved as small PNGs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.loader import NormaliseLayer
from ..errors import ConfigError
from ..specs import Preprocess
from .cam import grad_cams
from .figures import overlay
from .layers import default_cam_layer

OVERLAY_PX = 128  # overlays larger than this (e.g. 224 px inputs) are scaled down
BATCH = 32


@dataclass
class Overlays:
    """PNG bytes per mistake (in the order given), or why there are none."""

    images: list[bytes] = field(default_factory=list)
    layer: str | None = None
    note: str | None = None


def _png(pixels: np.ndarray) -> bytes:
    image = Image.fromarray(pixels)
    image.thumbnail((OVERLAY_PX, OVERLAY_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # fast; the files stay small
    return buffer.getvalue()


def mistake_overlays(model: nn.Module, spec: Any, preprocess: Preprocess, pixels: np.ndarray,
                     targets: list[int], device: torch.device) -> Overlays:
    """Grad-CAM of each image (N x H x W x 3 uint8) for its ``targets`` class, overlaid."""
    if len(pixels) == 0:
        return Overlays()
    model.eval()
    normalise = NormaliseLayer(preprocess).to(device)

    def inputs(batch: np.ndarray) -> torch.Tensor:
        return normalise(torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
                         .to(device))

    layer = default_cam_layer(model, spec)
    modules = dict(model.named_modules())
    images: list[bytes] = []
    try:
        if layer not in modules:  # no conv at all, or a plugin's name that is wrong
            raise ConfigError(f"model {spec.name!r} has no CAM layer {layer!r}.", None)
        for start in range(0, len(pixels), BATCH):
            batch = pixels[start:start + BATCH]
            maps = grad_cams(model, inputs(batch), modules[layer],
                             torch.as_tensor(targets[start:start + BATCH], dtype=torch.long))
            images += [_png(overlay(p, m)) for p, m in zip(batch, maps, strict=True)]
    except ConfigError as exc:  # e.g. a plugin's model without convolutions
        return Overlays(note=f"No class-activation maps: {exc.message}")
    return Overlays(images, layer)
