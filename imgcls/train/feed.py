"""How batches reach the model: decoding each split once, the loaders, and the
last hop onto the device (augmenting there when that is where it is cheapest)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import load_dataset
from ..data.augment import Pipeline
from ..data.cache import DecodedImages, decode_samples
from ..data.loader import auto_workers, make_loader
from ..errors import ConfigError
from ..specs import Preprocess
from .config import TrainConfig
from .distributed import DistEnv, EpochSampler, ShardSampler, with_sampler
from .multilabel import check_multilabel_config, decode_label_sets
from .optim import class_counts
from .progress import Reporter
from .timing import StageClock

Batch = tuple[torch.Tensor, torch.Tensor]
# Pixels augmented (and normalised) per call in the loop: four batches of 32 at 64 px.
# After a training step the caches hold the step's code and data, so the loader and
# the augmentation start cold; in a group they pay that once, and the matrices are drawn
# once. Far larger chunks outgrow the cache and cost more per image.
# `benchmarks/train_throughput.py --augment-pixels` compares sizes.
AUGMENT_PIXELS = 128 * 64 * 64


@dataclass
class OnDevice:
    """Moves each uint8 batch to the device and, unless the loader did, augments it there.

    With a GPU the loader then only decodes and slices; the augmentation runs on
    the GPU, batched. Per-image plugin transforms, and pipelines fed by worker
    processes on the CPU, stay in the loader (see :func:`augments_in_loop`).
    """

    device: torch.device
    augment: Pipeline | None = None  # None: the loader already augmented
    ahead: int = 1  # batches augmented in one call

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return images if self.augment is None else self.augment(images)

    def batches(self, loader: Iterable[Batch], clock: StageClock,
                normalize: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[Batch]:
        """The loader's batches as model inputs on the device, with their labels:
        ``ahead`` batches at a time augmented and normalised in one call each."""
        source = iter(loader)
        while True:
            with clock("data"):
                group = list(itertools.islice(source, self.ahead))
            if not group:
                return
            with clock("augment"):
                parts = [images.to(self.device, non_blocking=True) for images, _ in group]
                images = self(parts[0] if len(parts) == 1 else torch.cat(parts))
            with clock("normalise"):  # while the augmented pixels are still in the cache
                inputs = normalize(images)
            yield from zip(inputs.split([len(part) for part in parts]),
                           (labels for _, labels in group), strict=True)


def augments_in_loop(augment: Pipeline, device: torch.device, workers: int) -> bool:
    """Augment in the loop when every step is batched tensor code and nothing is gained
    by leaving it to the loader: on a GPU, or with no loader worker processes."""
    return bool(augment.sample) and augment.runs_on_device and (device.type == "cuda"
                                                                 or workers == 0)


def wants_channels_last(model: nn.Module) -> bool:
    """Convolutional models run faster channels-last with oneDNN (CPU) and cuDNN (GPU).

    Only the weights are converted: the first convolution then writes its output
    channels-last, and converting the NCHW input batch beforehand costs more than
    it saves (benchmarks/train_throughput.py).
    """
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def place_model(model: nn.Module, device: torch.device, augment: Pipeline,
                workers: int, batch_pixels: int | None = None) -> OnDevice:
    """Move ``model`` to ``device`` (channels-last when convolutional, in place) and
    say how its input batches get there. ``batch_pixels`` (one batch's images x pixels)
    sets how many batches the loop augments per call; without it, one."""
    model.to(device)
    if wants_channels_last(model):
        model.to(memory_format=torch.channels_last)
    if not augments_in_loop(augment, device, workers):
        return OnDevice(device)
    ahead = max(1, AUGMENT_PIXELS // batch_pixels) if batch_pixels else 1
    return OnDevice(device, augment, ahead=ahead)


def loader_workers(config: TrainConfig, images: DecodedImages) -> int:
    return auto_workers(images) if config.workers is None else config.workers


def make_loaders(train_images: DecodedImages, val_images: DecodedImages, augment: Pipeline,
                 on_device: OnDevice, config: TrainConfig, env: DistEnv,
                 num_classes: int) -> tuple[Any, Any]:
    """The train and val loaders; the train loader augments unless ``on_device`` does."""
    device = on_device.device
    transform = None if on_device.augment is not None else augment
    pin = device.type == "cuda"
    weights = None
    if config.sampler == "balanced":
        weights = 1.0 / class_counts(train_images.labels, num_classes)[train_images.labels]
    train = make_loader(train_images, config.batch_size, transform=transform, shuffle=True,
                        seed=config.seed, workers=config.workers, pin_memory=pin)
    # One sampler for every case: its order depends on (seed, epoch) only, so runs
    # resume exactly, and under torchrun it hands each rank its own share.
    train = with_sampler(train, EpochSampler(len(train_images), config.seed, env, weights))
    val = make_loader(val_images, max(config.batch_size, 64), workers=0, pin_memory=pin)
    if env.enabled:
        val = with_sampler(val, ShardSampler(len(val_images), env))
    return train, val


def decode_split(samples: list, preprocess: Preprocess, config: TrainConfig, reporter: Reporter,
            split: str) -> DecodedImages:
    task = reporter.task(f"decoding {split}", len(samples))
    images = decode_samples(samples, preprocess, mode=config.cache, on_progress=task)
    for path, reason in images.skipped:
        reporter.warn(f"skipped unreadable image {path}: {reason}")
    return images


def load_data(config: TrainConfig, preprocess: Preprocess, reporter: Reporter, env: DistEnv
               ) -> tuple[Any, Any, Any]:
    """List the files and decode each once at the model's input size; multi-label
    label sets become multi-hot rows."""
    dataset = load_dataset(config.data, config.data_options, config.val_split, config.seed,
                           task=config.task)
    if dataset.task == "multilabel":
        check_multilabel_config(config, env.enabled)
        train_images, val_images = (decode_label_sets(
            samples, len(dataset.classes),
            lambda indexed, split=split: decode_split(indexed, preprocess, config, reporter,
                                                      split))
            for samples, split in ((dataset.train, "train"), (dataset.val or [], "val")))
    else:
        if config.select_metric == "map":
            raise ConfigError("--select-metric map is for multi-label data.",
                              "Use accuracy, macro-f1 or loss, or pass --task multilabel.")
        train_images = decode_split(dataset.train, preprocess, config, reporter, "train")
        val_images = decode_split(dataset.val or [], preprocess, config, reporter, "val")
    return dataset, train_images, val_images
