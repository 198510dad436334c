"""Seeded, stratified train/validation splits."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from ..errors import ConfigError

Sample = tuple[Path, int]


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
