"""Built-in augmentations. Each acts on one uint8 CHW tensor at the model's input size."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision.transforms import v2

from imgcls import hookimpl
from imgcls.specs import AugmentationSpec

Transform = Callable[[torch.Tensor], torch.Tensor]


def flip(p: float = 0.5) -> Transform:
    return v2.RandomHorizontalFlip(p=float(p))


def vflip(p: float = 0.5) -> Transform:
    return v2.RandomVerticalFlip(p=float(p))


def shear(intensity: float = 0.2) -> Transform:
    # Keras' shear_range is a shear intensity; torchvision wants an angle in degrees.
    degrees = math.degrees(math.atan(float(intensity)))
    return v2.RandomAffine(degrees=0.0, shear=(-degrees, degrees))


def zoom(range: float = 0.2) -> Transform:  # named after Keras zoom_range
    r = float(range)
    if not 0.0 <= r < 1.0:
        raise ValueError(f"zoom range must be in [0, 1), got {r}")
    return v2.RandomAffine(degrees=0.0, scale=(1.0 - r, 1.0 + r))


BUILT_IN = (
    AugmentationSpec("flip", flip, "Random horizontal flip (p=0.5).", primary="p"),
    AugmentationSpec("vflip", vflip, "Random vertical flip (p=0.5).", primary="p"),
    AugmentationSpec("shear", shear, "Random shear; value is the Keras shear_range intensity.",
                     primary="intensity"),
    AugmentationSpec("zoom", zoom, "Random zoom in [1-r, 1+r]; value is Keras' zoom_range.",
                     primary="range"),
)


@hookimpl
def register_augmentations(register: Callable[[AugmentationSpec], None]) -> None:
    for spec in BUILT_IN:
        register(spec)
