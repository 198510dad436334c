"""A grid of augmented training images, to see what an ``--augment`` string does."""

from __future__ import annotations

import io
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import ConfigError, DataError
from ..io import atomic_write_bytes
from ..specs import Preprocess, Sample
from . import load_dataset
from .augment import build_pipeline
from .cache import decode_samples

GUTTER = 4
MIN_CELL = 128  # small model inputs are enlarged (nearest) to be visible


def pick_samples(samples: list[Sample], count: int, seed: int) -> list[Sample]:
    """``count`` samples taking classes in turn, so every class shows up."""
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample[1]].append(sample)
    rng = random.Random(seed)
    for items in by_class.values():
        rng.shuffle(items)
    picked: list[Sample] = []
    while len(picked) < count and any(by_class.values()):
        for label in sorted(by_class):
            if by_class[label] and len(picked) < count:
                picked.append(by_class[label].pop())
    return picked


def augment_preview(data: str, augment: str, preprocess: Preprocess, images: int = 6,
                    variants: int = 6, seed: int = 0,
                    options: dict[str, Any] | None = None) -> Image.Image:
    """Rows: training images; columns: the original, then ``variants`` augmented versions.

    Batch-level steps (mixup, cutmix) mix the images of one column with each other.
    """
    if images < 1 or variants < 1:
        raise ConfigError("--images and --variants must be at least 1.", "For example: -n 6.")
    pipeline = build_pipeline(augment)
    loaded = load_dataset(data, options, seed=seed)
    decoded = decode_samples(pick_samples(loaded.train, images, seed), preprocess)
    if len(decoded) == 0:
        raise DataError(f"None of the sampled images in {data!r} could be decoded.",
                        "Run `imgcls data check` on the data.")
    originals = torch.from_numpy(np.ascontiguousarray(decoded.pixels)).permute(0, 3, 1, 2)
    torch.manual_seed(seed)
    columns = [originals]
    for _ in range(variants):
        batch = pipeline.apply_batch(originals.clone())
        if pipeline.batch:
            targets = torch.nn.functional.one_hot(torch.from_numpy(decoded.labels),
                                                  len(loaded.classes)).float()
            mixed, _ = pipeline.mix(batch.float() / 255.0, targets)
            batch = (mixed * 255.0).round().clamp(0, 255).to(torch.uint8)
        columns.append(batch)
    labels = [loaded.classes[int(label)] for label in decoded.labels]
    return _grid(columns, labels)


def _grid(columns: list[torch.Tensor], labels: list[str]) -> Image.Image:
    rows, _, height, width = columns[0].shape
    scale = max(1, MIN_CELL // max(height, width))
    cell_h, cell_w = height * scale, width * scale
    sheet = Image.new("RGB", (len(columns) * (cell_w + GUTTER) + GUTTER,
                              rows * (cell_h + GUTTER) + GUTTER), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for col, batch in enumerate(columns):
        for row in range(rows):
            tile = Image.fromarray(batch[row].permute(1, 2, 0).numpy())
            if scale > 1:
                tile = tile.resize((cell_w, cell_h), Image.Resampling.NEAREST)
            left, top = GUTTER + col * (cell_w + GUTTER), GUTTER + row * (cell_h + GUTTER)
            sheet.paste(tile, (left, top))
            if col == 0:
                draw.text((left + 3, top + 2), labels[row], fill=(255, 255, 0),
                          stroke_width=1, stroke_fill=(0, 0, 0))
    return sheet


def write_preview(image: Image.Image, output: Path) -> Path:
    """Save the grid (format from the suffix, PNG when there is none)."""
    output = Path(output)
    encoded = io.BytesIO()
    try:
        fmt = Image.registered_extensions().get(output.suffix.lower()) if output.suffix else "PNG"
        if fmt is None:
            raise ValueError(f"unknown file extension: {output.suffix}")
        image.save(encoded, format=fmt)
        atomic_write_bytes(output, encoded.getvalue())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot write {output}: {exc}",
                          "Pass -o with a writable .png or .jpg path.") from exc
    return output
