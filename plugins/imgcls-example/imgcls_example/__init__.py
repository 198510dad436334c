"""An example imgcls plugin: one model, one augmentation and one dataset loader.

torch is imported inside the functions that use it: imgcls imports every plugin to list
its commands (``imgcls --help``), which should not wait for torch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from imgcls import hookimpl
from imgcls.data.folder import load_folder
from imgcls.specs import AugmentationSpec, DatasetSpec, LoadedDataset, ModelSpec, Preprocess

if TYPE_CHECKING:
    import torch
    from torch import nn

STRIPES = ("horizontal", "vertical", "diagonal")


def build_tiny_cnn(num_classes: int, image_size: tuple[int, int] = (32, 32),
                   channels: int = 16) -> nn.Module:
    """Conv 3x3, ReLU, global average pooling, linear: works at any input size."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, int(channels), 3, padding=1), nn.ReLU(),
        nn.Conv2d(int(channels), int(channels), 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(int(channels), num_classes),
    )


def invert(p: float = 0.5) -> Callable[[torch.Tensor], torch.Tensor]:
    """Invert a uint8 CHW image's colours with probability ``p``."""
    probability = float(p)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {probability}")

    def apply(image: torch.Tensor) -> torch.Tensor:
        import torch

        return 255 - image if torch.rand(()) < probability else image

    return apply


def _stripes(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    period = int(rng.integers(4, 9))
    y, x = np.mgrid[0:size, 0:size]
    coord = {"horizontal": y, "vertical": x, "diagonal": x + y}[kind] + rng.integers(0, period)
    mask = (coord // (period // 2 or 1)) % 2 == 0
    colour = rng.integers(128, 256, 3)
    pixels = np.where(mask[..., None], colour, 255 - colour).astype(np.uint8)
    return Image.fromarray(pixels)


def load_stripes(source: str | None = None, per_class: int = 40, size: int = 32,
                 seed: int = 0) -> LoadedDataset:
    """Write a small stripes data set (to ``source`` or a temp folder) and load it."""
    root = Path(source) if source else Path(tempfile.mkdtemp(prefix="imgcls-stripes-"))
    rng = np.random.default_rng(int(seed))
    for kind in STRIPES:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(int(per_class)):
            _stripes(kind, int(size), rng).save(folder / f"{i:04d}.png")
    return load_folder(str(root))


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(ModelSpec("tiny-cnn", build_tiny_cnn, Preprocess(size=(32, 32)),
                       "Example plugin model: two convs and global average pooling.", min_size=4))


@hookimpl
def register_augmentations(register: Callable[[AugmentationSpec], None]) -> None:
    register(AugmentationSpec("invert", invert, "Invert colours with probability p.",
                              primary="p"))


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec("stripes", load_stripes, "Synthetic stripes in three orientations."))
