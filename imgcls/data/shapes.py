"""A synthetic, seeded, learnable data set of shapes, written as real PNG files.

Writing files (instead of yielding tensors) means the default ``imgcls train``
exercises exactly the path a user's own folder of photos takes.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "diamond")
FORMAT_VERSION = 2
_DONE = ".complete"


def _polygon(cx: float, cy: float, radius: float, points: int, angle: float,
             inner: float | None = None) -> list[tuple[float, float]]:
    """Regular polygon, or a star when ``inner`` (inner radius fraction) is given."""
    vertices = []
    steps = points * 2 if inner else points
    for i in range(steps):
        r = radius * (inner if inner and i % 2 else 1.0)
        theta = angle + 2 * math.pi * i / steps
        vertices.append((cx + r * math.cos(theta), cy + r * math.sin(theta)))
    return vertices


def _cross(cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    t = r * 0.35
    arm = [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r), (-t, t),
           (-r, t), (-r, -t), (-t, -t)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in arm]


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A darkish background and a random shape colour that stands out from it.

    Shapes are brighter than their background, as objects under light usually are,
    which keeps the set learnable in a few CPU minutes despite random colours.
    """
    back = rng.integers(0, 110, 3)
    while True:
        fore = rng.integers(0, 256, 3)
        if fore.max() >= 170 and np.abs(back - fore).sum() > 200:
            return back, (int(fore[0]), int(fore[1]), int(fore[2]))


def draw_shape(kind: str, size: int, rng: np.random.Generator,
               scale: float = 1.0) -> Image.Image:
    """One image of ``kind`` with random colour, size, position and rotation on noise."""
    return draw_shape_with_mask(kind, size, rng, scale)[0]


def draw_shape_with_mask(kind: str, size: int, rng: np.random.Generator,
                         scale: float = 1.0) -> tuple[Image.Image, np.ndarray]:
    """:func:`draw_shape` and the shape's pixels as a boolean ``size x size`` mask.

    The mask is drawn with the same geometry on a blank canvas and consumes no random
    numbers, so the image is the one :func:`draw_shape` makes from the same ``rng``.
    ``scale`` multiplies the shape's radius (22-38% of ``size`` at 1.0).
    """
    if kind not in SHAPES:
        raise ConfigError(f"Unknown shape {kind!r}.", f"Choose from {', '.join(SHAPES)}.")
    back, fore = _colours(rng)
    noise = rng.normal(0.0, 14.0, (size, size, 3))
    pixels = np.clip(back[None, None, :] + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    r = rng.uniform(0.22, 0.38) * size * scale
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    angle = rng.uniform(0, 2 * math.pi)
    mask = Image.new("L", (size, size), 0)
    for canvas, fill in ((image, fore), (mask, 255)):
        _draw(ImageDraw.Draw(canvas), kind, (cx, cy, r, angle), fill)
    return image, np.asarray(mask) > 0


def _draw(draw: ImageDraw.ImageDraw, kind: str, where: tuple[float, float, float, float],
          fill: tuple[int, int, int] | int) -> None:
    cx, cy, r, angle = where
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r * 0.3)))
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, r * 1.1, 4, angle), fill=fill)
    elif kind == "diamond":
        # A rhombus (not a rotated square): elongated along a random axis.
        pts = [(0, -r * 1.2), (r * 0.6, 0), (0, r * 1.2), (-r * 0.6, 0)]
        c, s = math.cos(angle), math.sin(angle)
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=fill)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.15, 3, angle), fill=fill)
    elif kind == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, angle), fill=fill)
    elif kind == "star":
        draw.polygon(_polygon(cx, cy, r * 1.2, 5, angle, inner=0.45), fill=fill)
    else:  # cross; draw_shape_with_mask checked the name
        draw.polygon(_cross(cx, cy, r, angle), fill=fill)


@dataclass(frozen=True)
class ShapesOptions:
    """The shapes set's options (``--data-opt``); their defaults are defined here only."""

    classes: int = 5
    train_per_class: int = 1000
    val_per_class: int = 200
    size: int = 96
    seed: int = 0
    scale: int = 100  # the shapes' radius in percent of the default (22-38% of size)
    multilabel: int = 0  # 1: several shapes per image, none included (shapes_multilabel.py)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            object.__setattr__(self, name, int(value))  # options may arrive as strings
        if not 2 <= self.classes <= len(SHAPES):
            raise ConfigError(f"shapes supports 2 to {len(SHAPES)} classes, got {self.classes}.",
                              "Use e.g. --data-opt classes=5.")
        if not 20 <= self.scale <= 120:  # larger shapes no longer fit the canvas
            raise ConfigError(f"shapes' scale must be 20 to 120 (percent), got {self.scale}.",
                              "Use e.g. --data-opt scale=70 for smaller shapes.")

    @classmethod
    def parse(cls, options: dict[str, Any]) -> ShapesOptions:
        """Build from ``--data-opt`` values; unknown names raise a ConfigError."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"The shapes data set has no option {', '.join(unknown)}.",
                              f"Its options are: {', '.join(known)}.")
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid shapes option: {exc}",
                              "Options are whole numbers, e.g. --data-opt classes=5.") from exc

    def folder_name(self) -> str:
        scaled = f"-z{self.scale}" if self.scale != 100 else ""  # default names stay as they were
        scaled += "-multilabel" if self.multilabel else ""
        return (f"v{FORMAT_VERSION}-c{self.classes}-n{self.train_per_class}"
                f"-v{self.val_per_class}-s{self.size}-seed{self.seed}{scaled}")


def generate(root: Path, options: ShapesOptions | None = None) -> Path:
    """Write ``root/train/<shape>/*.png`` and ``root/val/<shape>/*.png`` once; reuse after.

    (The multi-label mode is written by ``shapes_multilabel.generate_multilabel``.)
    """
    options = options or ShapesOptions()
    if options.multilabel:
        raise ConfigError("generate() writes the one-label shapes set.",
                          "Use imgcls.data.shapes_multilabel.generate_multilabel.")

    def write(tmp: Path) -> None:
        for split in _SPLITS:
            for name, image, _ in drawn(options, split):
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                image.save(tmp / name)

    return build_once(root, write)


def build_once(root: Path, write: Callable[[Path], None]) -> Path:
    """``write(folder)`` into a temporary sibling of ``root``, renamed to ``root`` when
    complete, so an interrupted run never leaves half a set; nothing when ``root`` exists."""
    if (root / _DONE).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write(tmp)
        (tmp / _DONE).write_text("ok\n")
        try:
            os.replace(tmp, root)
        except OSError:
            if not (root / _DONE).exists():  # another process did not win the race either
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


_SPLITS = ("train", "val")


def drawn(options: ShapesOptions,
          split: str) -> Iterator[tuple[str, Image.Image, np.ndarray]]:
    """``(split/kind/kind_00000.png, image, mask)`` for every image :func:`generate` writes.

    The masks say where each shape is, e.g. to check what a model looks at.
    """
    count, offset = ((options.train_per_class, 0) if split == "train"
                     else (options.val_per_class, 1))
    for index, kind in enumerate(SHAPES[:options.classes]):
        rng = np.random.default_rng([options.seed, offset, index, FORMAT_VERSION])
        for i in range(count):
            image, mask = draw_shape_with_mask(kind, options.size, rng, options.scale / 100)
            yield f"{split}/{kind}/{kind}_{i:05d}.png", image, mask


def default_root(cache: Path, options: ShapesOptions) -> Path:
    """Where the set with these options is generated under the imgcls cache."""
    return cache / "shapes" / options.folder_name()
