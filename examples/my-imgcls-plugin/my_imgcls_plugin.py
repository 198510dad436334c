"""An imgcls plugin: the ConvMixer model, a posterize augmentation, a dataset loader
that reads labels from file names, and a training event."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from imgcls import hookimpl
from imgcls.errors import DataError
from imgcls.images import is_image_file
from imgcls.specs import (
    AugmentationSpec,
    DatasetSpec,
    LoadedDataset,
    ModelSpec,
    Preprocess,
    WeightsSpec,
)

# --- a model: --model convmixer (options: --model-opt dim=128 --model-opt depth=8 ...)


class Residual(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


def build_convmixer(num_classes: int, image_size: tuple[int, int] = (64, 64),
                    dim: int = 64, depth: int = 4, kernel: int = 5, patch: int = 8) -> nn.Module:
    """ConvMixer (Trockman & Kolter, 2022): a patch embedding, then depthwise and
    pointwise convolutions. Works at any input size."""
    dim, depth, kernel, patch = int(dim), int(depth), int(kernel), int(patch)

    def mixer() -> nn.Module:
        return nn.Sequential(
            Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel, groups=dim, padding=kernel // 2),
                                   nn.GELU(), nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim))

    return nn.Sequential(
        nn.Conv2d(3, dim, patch, stride=patch), nn.GELU(), nn.BatchNorm2d(dim),
        *(mixer() for _ in range(depth)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, num_classes))


CONVMIXER_PREPROCESS = Preprocess(size=(64, 64), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

# Pretrained weights: --model convmixer --weights imagenet (or --weights in1k) downloads
# this file on first use, checks its sha256 and loads it before training starts.
CONVMIXER_IN1K = WeightsSpec(
    tag="in1k",
    preprocess=CONVMIXER_PREPROCESS,  # what the weights were trained with
    url="https://example.org/my-plugin/convmixer-64-4-in1k.safetensors",
    sha256="9f2c4e0b7d1a3c5e8f60b2d4a6c8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3",
    metrics={"imagenet-top1": 61.0},
)


@hookimpl
def register_models(register):
    register(ModelSpec(
        name="convmixer",
        build=build_convmixer,
        preprocess=CONVMIXER_PREPROCESS,
        description="ConvMixer: patches, then depthwise/pointwise conv blocks (64x64).",
        min_size=16,
        weights=(CONVMIXER_IN1K,),
    ))


# --- an augmentation: --augment "posterize=3" or "posterize=3:p=0.2"


def posterize(bits: int = 4, p: float = 0.5):
    """Keep the top `bits` bits of every colour value, with probability p per image."""
    bits, p = int(bits), float(p)
    if not 1 <= bits <= 8 or not 0 <= p <= 1:
        raise ValueError(f"posterize needs 1 <= bits <= 8 and 0 <= p <= 1, got {bits}, {p}")
    mask = 256 - 2 ** (8 - bits)  # bits=3: 0b11100000

    def apply(image: torch.Tensor) -> torch.Tensor:  # one uint8 CHW image
        return image & mask if torch.rand(()) < p else image

    return apply


@hookimpl
def register_augmentations(register):
    register(AugmentationSpec("posterize", posterize, primary="bits",
                              description="Keep `bits` (4) bits per colour, probability p (0.5)."))


# --- a dataset loader: --data filenames:path/to/folder


def load_filenames(source: str | None = None, separator: str = ".") -> LoadedDataset:
    """Every image under a folder, labelled by its file name up to the first `separator`:
    cat.1.jpg is a cat, dog.7.jpg a dog (Kaggle's dogs-vs-cats layout)."""
    root = Path(source or ".")
    paths = sorted(path for path in root.rglob("*") if is_image_file(path))
    if not paths:
        raise DataError(f"No images under {root}.", "Pass --data filenames:path/to/folder.")
    labels = [path.name.split(separator, 1)[0] for path in paths]
    classes = sorted(set(labels))
    index = {name: i for i, name in enumerate(classes)}
    train = [(path, index[label]) for path, label in zip(paths, labels, strict=True)]
    # val=None: imgcls holds out --val-split (20%) of each class for validation.
    return LoadedDataset(classes, train, val=None, source=str(root))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("filenames", load_filenames, "Labels from file names (cat.1.jpg)."))


# --- a training event: called once, when training ends (rank 0 only)


@hookimpl
def on_fit_end(result):
    best = result.best
    print(f"my-plugin: {result.run_dir} best val_acc {best['val_acc']:.3f} "
          f"at epoch {best['epoch']}")
