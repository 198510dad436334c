"""The one image decoder used by training, evaluation, export checks and inference.

Every path from a file (or bytes, or an in-memory image) to model pixels goes
through here, so all four stages see the same pixels.

Colour policy, applied in this order:

1. Format is sniffed from the content, never the extension (a PNG named
   ``.jpg`` decodes fine). Supported: JPEG (incl. MPO), PNG, BMP, GIF, WebP,
   TIFF, PPM/PGM/PBM; the first frame of animations and multi-page files.
2. Images larger than ``max_pixels`` (width x height, read from the header
   before any pixel is decoded) are refused. Pillow's own hard limit
   (2 x ``Image.MAX_IMAGE_PIXELS``, equal to the default) still applies.
3. The EXIF orientation is applied.
4. Transparency (RGBA, LA, PA, RGBa, La, or a ``transparency`` key on P, L or
   RGB) is composited over ``background`` (white by default).
5. Grayscale (L, 1) is replicated to three channels; palettes are expanded;
   CMYK, YCbCr, LAB and HSV use Pillow's conversion to RGB.
6. 16-bit data (I;16*) is scaled to 8 bits (``round(v / 257)``). Mode I is
   taken as 16-bit when its maximum is <= 65535, else as full-range 31-bit;
   negative values clip to 0. Float data (mode F, float arrays) is taken as
   [0, 1] when its maximum is <= 1, else [0, 255]; it is clipped, NaN is 0.

Steps 4 to 6 are implemented in :mod:`imgcls.colour`.

JPEGs may be decoded at a reduced scale (libjpeg "draft" mode) when the size
needed afterwards is at most half the stored size; the result is never smaller
than requested. Any failure raises :class:`~imgcls.errors.DecodeError` naming
the file. Pillow's per-file warnings (corrupt EXIF, large images) are not
shown: a decode either returns pixels or raises.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .colour import WHITE, Colour, array_to_image, to_rgb
from .errors import ConfigError, DecodeError, ImgclsError
from .specs import Preprocess

DEFAULT_MAX_PIXELS: int = 178_956_970
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)

# MPO (multi-picture JPEG from phone cameras) is opened by the JPEG plugin. Limiting
# the set keeps odd plugins (EPS runs Ghostscript) away from untrusted files.
_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM")
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_FORMAT_EXTENSIONS = {
    "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"}, "MPO": {".jpg", ".jpeg", ".mpo"},
    "PNG": {".png"}, "BMP": {".bmp", ".dib"}, "GIF": {".gif"}, "WEBP": {".webp"},
    "TIFF": {".tif", ".tiff"}, "PPM": {".ppm", ".pgm", ".pbm", ".pnm"},
}
_TRANSPOSED = frozenset({5, 6, 7, 8})  # orientations that swap width and height
_HINT = "The file is damaged or not an image; re-create it or remove it from the data set."

Size = tuple[int, int]
Source = str | os.PathLike | bytes | Image.Image


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def decode(
    source: Source,
    *,
    draft_size: Size | None = None,
    background: Colour = WHITE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """Decode a file, bytes or PIL image into an RGB image, by the colour policy.

    ``draft_size`` (width, height, upright orientation) lets JPEGs decode at a
    reduced scale that is still at least that large. ``name`` replaces the
    source in error messages (useful for bytes read from a file).
    """
    return _decode(source, lambda _size: draft_size, background, max_pixels, name)


@dataclass(frozen=True)
class ImageInfo:
    """A file's header, before the colour policy: real format, mode, stored (w, h)."""

    format: str
    mode: str
    size: Size


def probe(source: str | os.PathLike | bytes, *, name: str | None = None) -> ImageInfo:
    """Read only the header of ``source`` (no pixels are decoded)."""
    label = _label(source, name)
    with _decode_errors(label, source), _quiet_pillow(), \
            Image.open(_open_arg(source, label), formats=_FORMATS) as img:
        return ImageInfo(img.format or "", img.mode, img.size)


def extension_matches(path: str | os.PathLike, image_format: str) -> bool:
    """False when the file's extension names another format than its content."""
    expected = _FORMAT_EXTENSIONS.get(image_format.upper())
    return expected is None or os.path.splitext(os.fspath(path))[1].lower() in expected


def resize_to(image: Image.Image, preprocess: Preprocess) -> np.ndarray:
    """Resize/crop an image to ``preprocess.size`` (h, w); HxWx3 uint8, C-contiguous.

    ``stretch`` ignores the aspect ratio. ``shorter`` scales uniformly so the
    image covers ``size / crop_fraction`` (for square sizes: the shorter side
    becomes ``size / crop_fraction``) and then centre-crops to ``size``.
    """
    if image.mode != "RGB":
        image = to_rgb(image, WHITE)
    height, width = preprocess.size
    try:
        resample = Image.Resampling[preprocess.interpolation.upper()]
    except KeyError:
        raise ConfigError(f"Unknown interpolation {preprocess.interpolation!r}", None) from None
    if preprocess.resize == "stretch":
        out = image if image.size == (width, height) else image.resize((width, height), resample)
    elif preprocess.resize == "shorter":
        cover = _cover_size(image.size, preprocess)
        if cover != image.size:
            image = image.resize(cover, resample)
        left = round((cover[0] - width) / 2)
        top = round((cover[1] - height) / 2)
        out = image.crop((left, top, left + width, top + height))
    else:
        raise ConfigError(f"Unknown resize mode {preprocess.resize!r}", "Use stretch or shorter.")
    return np.ascontiguousarray(np.array(out, dtype=np.uint8))


def load_pixels(
    source: Source,
    preprocess: Preprocess,
    *,
    background: Colour = WHITE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: bool = True,
) -> np.ndarray:
    """Decode ``source`` and resize it for ``preprocess``; HxWx3 uint8.

    The JPEG draft size is chosen from the header so that the image is no
    smaller than what the resize step needs. ``draft=False`` always decodes at
    full size.
    """
    needed = (lambda size: _needed_size(size, preprocess)) if draft else (lambda _size: None)
    return resize_to(_decode(source, needed, background, max_pixels), preprocess)


def to_pixels(
    image: Image.Image | np.ndarray, preprocess: Preprocess, *, background: Colour = WHITE
) -> np.ndarray:
    """Apply the colour policy and :func:`resize_to` to an in-memory image.

    Arrays may be HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA); uint8, uint16, bool,
    other integers within 0..255, or float (see the module policy).
    """
    if isinstance(image, np.ndarray):
        image = array_to_image(image)
    elif not isinstance(image, Image.Image):
        raise DecodeError(
            f"Cannot convert {type(image).__name__}: expected a PIL image or numpy array",
            "Pass a file path to load_pixels, or a PIL.Image / numpy array here.",
        )
    return resize_to(_decode(image, lambda _size: None, background, None), preprocess)


def item_pixels(item: object, preprocess: Preprocess, verb: str = "classify") -> np.ndarray:
    """A path, PIL image or HxWxC array, decoded and resized as the model sees it."""
    if isinstance(item, str | os.PathLike):
        return load_pixels(item, preprocess)
    if isinstance(item, np.ndarray) or hasattr(item, "mode"):
        return to_pixels(item, preprocess)  # type: ignore[arg-type]
    raise DecodeError(f"Cannot {verb} a {type(item).__name__}.",
                      "Pass file paths, PIL images or HxWxC numpy arrays.")


# --------------------------------------------------------------------------- decoding


def _decode(
    source: Source,
    draft_for: Callable[[Size], Size | None],
    background: Colour,
    max_pixels: int | None,
    name: str | None = None,
) -> Image.Image:
    label = _label(source, name)
    _check_background(background)
    with _decode_errors(label, source), _quiet_pillow():
        if isinstance(source, Image.Image):
            _check_pixels(source.size, max_pixels, label)
            source.load()
            return _finish(source, background)
        with Image.open(_open_arg(source, label), formats=_FORMATS) as img:
            _check_pixels(img.size, max_pixels, label)
            if img.format in _JPEG_FORMATS:
                _maybe_draft(img, draft_for)
            img.load()
            return _finish(img, background)


def _open_arg(source: str | os.PathLike | bytes, label: str) -> str | io.BytesIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise DecodeError(f"Cannot decode {label}: empty input", _HINT)
        return io.BytesIO(source)
    try:
        mode = os.stat(source).st_mode
    except OSError:  # Pillow's own error names the problem (missing, no permission)
        return os.fspath(source)
    if not stat.S_ISREG(mode):  # opening a FIFO or a device would block or never end
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
        raise DecodeError(f"Cannot decode {label}: not a regular file ({kind}).",
                          "Pass image files.")
    return os.fspath(source)


@contextlib.contextmanager
def _decode_errors(label: str, source: object) -> Iterator[None]:
    """Turn whatever Pillow raises into a DecodeError naming the file."""
    try:
        yield
    except (ImgclsError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"Cannot decode {label}: {exc}", _BOMB_HINT) from exc
    # Pillow's format plugins raise almost any exception type on corrupt input.
    except Exception as exc:
        reason, hint = _reason(exc, source)
        raise DecodeError(f"Cannot decode {label}: {reason}", hint) from exc


_BOMB_HINT = "Raise max_pixels if the image is trusted, or downscale it first."

# warnings.catch_warnings() swaps the process-wide filter list and restores a snapshot on
# exit, so decoders in several threads would undo each other's changes and leak filters.
# Instead one "ignore warnings raised inside PIL" entry is kept at the front of the list
# while at least one decode is running, added and removed under a lock by identity.
_PIL_MODULES = re.compile(r"PIL(\.|$)")
_quiet_lock = threading.Lock()
_quiet_users = 0
_quiet_entry: tuple | None = None


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    global _quiet_users, _quiet_entry
    with _quiet_lock:
        if _quiet_users == 0:
            _quiet_entry = ("ignore", None, Warning, _PIL_MODULES, 0)
            warnings.filters.insert(0, _quiet_entry)
            _filters_changed()
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0:
                _remove_filter(_quiet_entry)
                _quiet_entry = None


def _remove_filter(entry: tuple | None) -> None:
    # By identity: an equal filter the user installed must stay. It may already be gone
    # when another thread's catch_warnings() replaced the list meanwhile.
    for index, item in enumerate(warnings.filters):
        if item is entry:
            del warnings.filters[index]
            _filters_changed()
            return


def _filters_changed() -> None:
    # The C warnings module caches filter lookups per module; tell it the list changed.
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()


def _label(source: object, name: str | None = None) -> str:
    if name is not None:
        return repr(name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<image>"
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    raise DecodeError(f"Cannot decode a {type(source).__name__}", "Pass a path, bytes or image.")


def _reason(exc: Exception, source: object) -> tuple[str, str]:
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return "file not found", "Check the path; the file may have been moved or deleted."
    if isinstance(exc, IsADirectoryError):
        return "is a directory", "Pass an image file, not a folder."
    if isinstance(exc, PermissionError):
        return "permission denied", "Check the file's read permissions."
    if isinstance(exc, UnidentifiedImageError):
        if isinstance(source, (str, os.PathLike)):
            try:
                if os.path.getsize(source) == 0:
                    return "file is empty (0 bytes)", _HINT
            except OSError:
                pass
        return f"not an image in a supported format ({', '.join(_FORMATS)})", _HINT
    if "truncated" in text or "broken data stream" in text:
        return f"truncated image data ({text})", _HINT
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__), _HINT


def _check_pixels(size: Size, max_pixels: int | None, label: str) -> None:
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise DecodeError(
            f"Cannot decode {label}: {size[0]}x{size[1]} pixels exceeds the limit of "
            f"{max_pixels} (possible decompression bomb)",
            _BOMB_HINT,
        )
    if size[0] <= 0 or size[1] <= 0:
        raise DecodeError(f"Cannot decode {label}: empty image ({size[0]}x{size[1]})", _HINT)


def _check_background(background: Colour) -> None:
    if len(background) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in background):
        raise ConfigError(
            f"Invalid background colour {background!r}", "Use three integers in 0..255."
        )


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a bad tag only means "do not rotate"
        return 1


def _maybe_draft(img: Image.Image, draft_for: Callable[[Size], Size | None]) -> None:
    transposed = _orientation(img) in _TRANSPOSED
    width, height = img.size
    upright = (height, width) if transposed else (width, height)
    wanted = draft_for(upright)
    if wanted is None:
        return
    want_w, want_h = (wanted[1], wanted[0]) if transposed else wanted
    if 0 < want_w * 2 <= width and 0 < want_h * 2 <= height:
        img.draft("RGB", (want_w, want_h))


def _finish(img: Image.Image, background: Colour) -> Image.Image:
    if _orientation(img) != 1:
        img = ImageOps.exif_transpose(img)
    out = to_rgb(img, background)
    # Hand back a plain in-memory image, never the file-backed object.
    return out.copy() if out is img else out


# --------------------------------------------------------------------------- geometry


def _cover_size(size: Size, preprocess: Preprocess) -> Size:
    """(w, h) after the uniform scale of ``shorter`` mode, before the centre crop."""
    fraction = preprocess.crop_fraction
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"crop_fraction must be in (0, 1], got {fraction}", None)
    height, width = preprocess.size
    # The epsilon keeps e.g. 224 / 0.875 from flooring to one pixel less.
    cover_h = max(height, math.floor(height / fraction + 1e-6))
    cover_w = max(width, math.floor(width / fraction + 1e-6))
    scale = max(cover_w / size[0], cover_h / size[1])
    # The long side is truncated, as torchvision's Resize does: pretrained weights saw
    # exactly these pixels (the epsilon keeps an exact product from losing a pixel).
    return (max(cover_w, int(size[0] * scale + 1e-6)), max(cover_h, int(size[1] * scale + 1e-6)))


def _needed_size(size: Size, preprocess: Preprocess) -> Size:
    """(w, h) the decoded image must have for :func:`resize_to` to keep full detail."""
    if preprocess.resize == "shorter":
        return _cover_size(size, preprocess)
    return (preprocess.size[1], preprocess.size[0])
