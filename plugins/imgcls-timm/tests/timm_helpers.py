"""Generated images for the timm plugin's tests (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40)}


def class_folders(root: Path, per_class: int = 6, size: int = 56) -> Path:
    """Two colour classes with a bright square at a random place: easy, not trivial."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour)[None, None] + rng.integers(-30, 31, (size, size, 3)),
                             0, 255).astype(np.uint8)
            x, y = rng.integers(0, size // 2, 2)
            pixels[y:y + size // 4, x:x + size // 4] = 255
            Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root


def photos(folder: Path, count: int = 4) -> list[Path]:
    """Non-square photo-like JPEGs (smooth gradients plus noise) of several aspect ratios."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i, (w, h) in enumerate([(317, 251), (240, 333), (301, 300), (500, 181)][:count]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
        pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i}.jpg"
        Image.fromarray(pixels).save(path, quality=92)
        paths.append(path)
    return paths
