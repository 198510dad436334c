"""Torch datasets over decoded pixels, and moving batches onto the device.

Batches are fetched whole (``__getitems__``): one slice of the uint8 array
per batch, then the augmentations run once per batch, instead of item by item
with a collate step, which cost more than a small CNN's training step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..specs import Preprocess
from .augment import apply_to_batch
from .cache import DecodedImages

Batch = tuple[torch.Tensor, torch.Tensor]


class PixelDataset(Dataset):
    """Items are (uint8 CHW tensor, label); batches (uint8 NCHW, int64 labels, or float32
    multi-hot rows for a multi-label set).

    ``transform`` augments: a Pipeline, a callable marked ``batched``, or any
    callable on one CHW image (see :func:`~imgcls.data.augment.apply_to_batch`).
    """

    def __init__(self, images: DecodedImages, transform: Callable | None = None) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels, labels = self.images.take([index])
        image = torch.from_numpy(pixels[0]).permute(2, 0, 1).contiguous()
        if self.transform is not None:
            image = self.transform(image)
        return image, (int(labels[0]) if np.asarray(labels).dtype != np.float32
                       else torch.from_numpy(np.asarray(labels[0])))

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        pixels, labels = self.images.take(indices)
        # NCHW in shape, channels-last in memory, as decoded: no copy, and the
        # channels-last convolutions (train/feed.py) take the batch as it is.
        images = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
        augmented = images if self.transform is None else apply_to_batch(self.transform, images)
        return augmented, label_tensor(labels)


def label_tensor(labels: np.ndarray) -> torch.Tensor:
    """int64 class indices, or (multi-label) the float32 multi-hot rows as they are."""
    labels = np.asarray(labels)
    return torch.from_numpy(labels if labels.dtype == np.float32 else labels.astype(np.int64))


def collate_batch(batch: Any) -> Any:
    """``__getitems__`` already returns a collated batch; a list of items is stacked."""
    if isinstance(batch, tuple):
        return batch
    return torch.utils.data.default_collate(batch)


def auto_workers(images: Any) -> int:
    """Worker processes for a loader over ``images``.

    Cached pixels need none: slicing a batch costs far less than moving it
    between processes. Lazy decoding overlaps with training in worker
    processes; one core is left to the training step.
    """
    if not getattr(images, "lazy", False):
        return 0
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def make_loader(
    images: DecodedImages,
    batch_size: int,
    *,
    transform: Callable | None = None,
    shuffle: bool = False,
    seed: int = 0,
    workers: int | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches of (uint8 NCHW, int64 labels); ``workers=None`` picks :func:`auto_workers`."""
    workers = auto_workers(images) if workers is None else workers
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        PixelDataset(images, transform),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=workers,
        collate_fn=collate_batch,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )


class NormaliseLayer(torch.nn.Module):
    """A layer: uint8 NCHW RGB pixels -> float32 model input, :meth:`Preprocess.apply` in torch.

    One module for training (inside :class:`DeviceNormaliser`) and for the exported
    graph (inside ``Deployable``), with the constants of ``Preprocess.affine``,
    so what the model was trained on and what it is deployed with cannot drift.
    """

    def __init__(self, preprocess: Preprocess) -> None:
        super().__init__()
        scale, shift = preprocess.affine()
        self.register_buffer("scale", torch.from_numpy(scale).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.from_numpy(shift).view(1, 3, 1, 1))
        self.flip_channels = preprocess.flip_channels

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.flip_channels:
            pixels = pixels.flip(1)
        return pixels.to(torch.float32) * self.scale + self.shift


class DeviceNormaliser:
    """Not a layer: moves a uint8 NCHW batch to ``device``, then a NormaliseLayer there."""

    def __init__(self, preprocess: Preprocess, device: torch.device) -> None:
        self.normalise = NormaliseLayer(preprocess).to(device)
        self.device = device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.normalise(batch.to(self.device, non_blocking=True))
