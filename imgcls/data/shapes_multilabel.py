"""The shapes set's multi-label mode (``--data-opt multilabel=1``).

Each image holds any number of the classes' shapes, none included, one per cell
of a 2 x 2 grid, listed in ``train.csv`` / ``val.csv`` as ``path,labels`` with
``;``-separated labels: a multi-label demo that needs no download.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .shapes import FORMAT_VERSION, SHAPES, ShapesOptions, _draw, build_once

PRESENCE = 0.35  # the chance of each class in an image: about 12% of images hold none
CELLS = 4  # at most four shapes, one per quarter of the canvas
UPRIGHT = {"square": math.pi / 4, "triangle": -math.pi / 2}  # a flat side down


def _fore(rng: np.random.Generator, back: np.ndarray) -> tuple[int, int, int]:
    """A bright colour that stands out from ``back``."""
    while True:
        fore = rng.integers(0, 256, 3)
        if fore.max() >= 170 and np.abs(back - fore).sum() > 200:
            return int(fore[0]), int(fore[1]), int(fore[2])


def draw_scene(kinds: list[str], size: int, rng: np.random.Generator,
               scale: float = 1.0) -> Image.Image:
    """``kinds`` (at most four) each in its own random quarter, on a noisy background."""
    back = rng.integers(0, 110, 3)
    noise = rng.normal(0.0, 14.0, (size, size, 3))
    image = Image.fromarray(np.clip(back[None, None, :] + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    half = size / 2
    for kind, cell in zip(kinds, rng.permutation(CELLS)[: len(kinds)], strict=False):
        # as large as a quarter allows: small shapes at 32-48 px are hard to tell apart
        r = min(rng.uniform(0.34, 0.47) * half * scale, half / 2 - 1.5)
        low_x, low_y = (cell % 2) * half, (cell // 2) * half
        cx = rng.uniform(low_x + r + 1, low_x + half - r - 1)
        cy = rng.uniform(low_y + r + 1, low_y + half - r - 1)
        # Slightly tilted, not turned at will: at 32-48 px a quarter-turned square and a
        # circle are a few pixels apart, and the demo must train in a minute.
        tilt = UPRIGHT.get(kind, 0.0) + rng.uniform(-0.1, 0.1) * math.pi
        _draw(draw, kind, (cx, cy, r, tilt), _fore(rng, back))
    return image


def scenes(options: ShapesOptions, split: str) -> Iterator[tuple[str, Image.Image, list[str]]]:
    """``(split/scene_00000.png, image, labels)``: as many images as the one-label set."""
    offset, per_class = (0, options.train_per_class) if split == "train" \
        else (1, options.val_per_class)
    kinds = SHAPES[: options.classes]
    rng = np.random.default_rng([options.seed, offset, 99, FORMAT_VERSION])
    for i in range(per_class * options.classes):
        present = [kind for kind in kinds if rng.random() < PRESENCE]
        if len(present) > CELLS:
            present = sorted(rng.choice(present, CELLS, replace=False).tolist(), key=kinds.index)
        image = draw_scene(present, options.size, rng, options.scale / 100)
        yield f"{split}/scene_{i:05d}.png", image, present


def write_multilabel(tmp: Path, options: ShapesOptions) -> None:
    """Write the images and ``train.csv`` / ``val.csv`` into ``tmp``."""
    for split in ("train", "val"):
        (tmp / split).mkdir(parents=True, exist_ok=True)
        lines = ["path,labels"]
        for name, image, labels in scenes(options, split):
            image.save(tmp / name)
            lines.append(f"{name},{';'.join(labels)}")
        (tmp / f"{split}.csv").write_text("\n".join(lines) + "\n")


def generate_multilabel(root: Path, options: ShapesOptions) -> Path:
    """Write the multi-label set once into ``root`` (as :func:`shapes.generate` does)."""
    return build_once(root, lambda tmp: write_multilabel(tmp, options))
