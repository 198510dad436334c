"""The colour (mode) policy of :mod:`imgcls.images`: any Pillow mode or array -> 8-bit RGB.

Transparency is composited over a background colour; grayscale and palettes
are expanded; 16-bit, 32-bit and float data are scaled to 8 bits as the
decoder's module docstring describes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import DecodeError

Colour = tuple[int, int, int]
WHITE: Colour = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def to_rgb(img: Image.Image, background: Colour) -> Image.Image:
    """An RGB image; transparent pixels become ``background``."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(scale_to_u8(np.asarray(img), mode)).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = (img.convert("LA") if mode == "La" else img).convert("RGBA")
        out = Image.new("RGB", img.size, background)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")


def scale_to_u8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit (mode ``I``) or float pixels -> uint8, by the decoder's policy."""
    if mode == "F" or arr.dtype.kind == "f":
        data = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if data.size and data.max() <= 1.0:
            data = data * 255.0
        return np.rint(np.clip(data, 0.0, 255.0)).astype(np.uint8)
    data = np.clip(arr.astype(np.int64), 0, None)
    if mode == "I" and data.size and data.max() > 65535:
        return (data >> 23).astype(np.uint8)
    return ((data + 128) // 257).astype(np.uint8)


def array_to_image(arr: np.ndarray) -> Image.Image:
    """HxW, HxWx1, HxWx3 or HxWx4 pixels of a supported dtype -> an L, RGB or RGBA image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))) or 0 in arr.shape:
        raise DecodeError(
            f"Cannot convert <array>: shape {arr.shape} is not HxW, HxWx1, HxWx3 or HxWx4",
            "Pass one image at a time, channels last.",
        )
    kind = arr.dtype.kind
    if kind == "b":
        arr = arr.astype(np.uint8) * 255
    elif kind == "f" or arr.dtype == np.uint16:
        arr = scale_to_u8(arr, "F" if kind == "f" else "I;16")
    elif kind not in "iu" or (arr.dtype != np.uint8 and (arr.min() < 0 or arr.max() > 255)):
        raise DecodeError(
            f"Cannot convert <array>: dtype {arr.dtype} (integers must lie in 0..255)",
            "Pass uint8, uint16, bool or float data.",
        )
    # uint8 after this; fromarray infers L, RGB or RGBA from the shape.
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
