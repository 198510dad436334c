"""Seeded, stratified train/validation splits, and picking a split of a loaded data set."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from ..errors import ConfigError, DataError
from ..specs import LoadedDataset

Sample = tuple[Path, int]

# auto: the validation split when the data has one, else every image.
SPLITS = ("auto", "val", "train", "all")


def check_split(split: str) -> str:
    """``split`` when it is one of SPLITS; a ConfigError naming them otherwise."""
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}.",
                          f"Use one of: {', '.join(SPLITS)} (e.g. --split val).")
    return split


def select_split(loaded: LoadedDataset, split: str, data: str) -> list[Sample]:
    """The samples of ``split`` (one of SPLITS) of ``loaded``, the data set named ``data``."""
    check_split(split)
    if split == "val" and not loaded.val:
        raise DataError(f"{data!r} has no validation split.",
                        "Use --split all to evaluate every image, or add a val/ folder.")
    if split == "auto":
        return loaded.val or loaded.train
    if split == "all":
        return loaded.train + (loaded.val or [])
    return loaded.val if split == "val" else loaded.train


def split_stratified(
    samples: list[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Move ``fraction`` of each class to validation; every class keeps a training image."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--val-split must be between 0 and 1, got {fraction}.",
                          "Use e.g. --val-split 0.2, or provide a val/ folder.")
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: (s[1], str(s[0]))):
        by_class[sample[1]].append(sample)
    rng = random.Random(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        items = by_class[label]
        rng.shuffle(items)
        n_val = min(len(items) - 1, max(1, round(len(items) * fraction))) if len(items) > 1 else 0
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return train, val
