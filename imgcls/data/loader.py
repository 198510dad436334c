"""Torch datasets over decoded pixels, and moving batches onto the device."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..specs import Preprocess
from .cache import DecodedImages


class PixelDataset(Dataset):
    """Items are (uint8 CHW tensor, label), augmented by ``transform`` when given."""

    def __init__(self, images: DecodedImages, transform: Callable | None = None) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = np.ascontiguousarray(self.images.pixels[index])
        image = torch.from_numpy(pixels).permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.images.labels[index])


def make_loader(
    images: DecodedImages,
    batch_size: int,
    *,
    transform: Callable | None = None,
    shuffle: bool = False,
    seed: int = 0,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        PixelDataset(images, transform),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


class Normalizer:
    """uint8 NCHW batch on any device -> float model input, by the model's Preprocess."""

    def __init__(self, preprocess: Preprocess, device: torch.device) -> None:
        mul, add = preprocess.affine()
        self.mul = torch.from_numpy(mul).view(1, 3, 1, 1).to(device)
        self.add = torch.from_numpy(add).view(1, 3, 1, 1).to(device)
        self.bgr = preprocess.channel_order == "BGR"
        self.device = device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        if self.bgr:
            batch = batch.flip(1)
        return batch.float() * self.mul + self.add
