"""Fuzz imgcls.images.decode: any bytes give an RGB image or a DecodeError, quickly."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgcls.errors import DecodeError
from imgcls.images import decode, load_pixels
from imgcls.specs import Preprocess

MAX_PIXELS = 4_000_000
SECONDS_PER_EXAMPLE = 5
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _seed(fmt: str, mode: str, **kw) -> bytes:
    rng = np.random.default_rng(len(fmt) + len(mode))
    channels = len(mode)
    arr = rng.integers(0, 256, (12, 20, channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, fmt, exif=exif.tobytes(), **kw)
    return buf.getvalue()


SEEDS = [
    _seed("JPEG", "RGB", quality=80),
    _seed("JPEG", "L", progressive=True),
    _seed("PNG", "RGBA"),
    _seed("PNG", "L"),
    _seed("WEBP", "RGB"),
    _seed("TIFF", "RGB"),
    _seed("GIF", "L"),
    _seed("BMP", "RGB"),
]


class Hang(BaseException):
    """Raised by the alarm; a BaseException so the decoder's error handling cannot eat it."""


@contextlib.contextmanager
def time_limit(seconds: int):
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"decode took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def mutated(draw) -> bytes:
    """A seed image with 1-6 random edits; positions are uniform so the edits reach past
    the header into the pixel data (hypothesis alone favours offsets near 0)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "overwrite"]))
        pos = int(rng.integers(0, max(1, len(data))))
        junk = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
        if op == "flip" and data:
            data[pos] ^= 1 << int(rng.integers(0, 8))
        elif op == "insert":
            data[pos:pos] = junk
        elif op == "delete":
            del data[pos : pos + len(junk)]
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos : pos + len(junk)] = junk
    return bytes(data)


def check(call) -> None:
    with warnings.catch_warnings(record=True) as caught, time_limit(SECONDS_PER_EXAMPLE):
        warnings.simplefilter("always")
        try:
            out = call()
        except DecodeError as exc:
            assert exc.message.startswith("Cannot decode")
            return
    assert caught == []
    if isinstance(out, Image.Image):
        assert out.mode == "RGB" and out.size[0] * out.size[1] <= MAX_PIXELS
        assert len(out.tobytes()) == 3 * out.size[0] * out.size[1]
    else:
        assert out.shape == (16, 24, 3) and out.dtype == np.uint8


@FUZZ
@given(data=mutated())
def test_mutated_images(data: bytes) -> None:
    check(lambda: decode(data, max_pixels=MAX_PIXELS))
    fd, name = tempfile.mkstemp(suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        check(lambda: decode(name, max_pixels=MAX_PIXELS))
        check(lambda: load_pixels(name, Preprocess(size=(16, 24)), max_pixels=MAX_PIXELS))
    finally:
        os.unlink(name)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=512),
        st.tuples(
            st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\0"]),
            st.binary(max_size=256),
        ).map(b"".join),
    )
)
def test_random_bytes(data: bytes) -> None:
    check(lambda: decode(data, max_pixels=MAX_PIXELS))


def test_seeds_are_valid() -> None:
    for seed in SEEDS:
        assert decode(seed).size in ((12, 20), (20, 12))  # EXIF 6 swaps where stored
