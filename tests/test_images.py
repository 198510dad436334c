"""Tests for imgcls.images: the shared decoder and its colour policy."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from imgcls import images
from imgcls.errors import ConfigError, DecodeError
from imgcls.images import decode, is_image_file, load_pixels, resize_to, to_pixels
from imgcls.specs import Preprocess

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def close(a, b, tol: int = 6) -> bool:
    return bool(np.all(np.abs(np.asarray(a, int) - np.asarray(b, int)) <= tol))


@pytest.fixture
def spy_draft(monkeypatch):
    calls: list[tuple] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def draft(self, mode, size):
        calls.append((mode, size, self.size))
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", draft)
    return calls


# --------------------------------------------------------------------------- basics


def test_extensions_and_is_image_file():
    expected = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
    assert expected == images.IMAGE_EXTENSIONS
    assert is_image_file("a/b.JPG") and is_image_file(Path("x.Tiff")) and is_image_file("c.pgm")
    assert not is_image_file("notes.txt") and not is_image_file("jpg") and not is_image_file("a.")


def test_truncation_is_never_tolerated_globally():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("fmt", "ext"),
    [
        ("JPEG", ".jpg"),
        ("PNG", ".png"),
        ("BMP", ".bmp"),
        ("GIF", ".gif"),
        ("WEBP", ".webp"),
        ("TIFF", ".tif"),
        ("PPM", ".ppm"),
    ],
)
def test_formats_round_trip(tmp_path, fmt, ext):
    img = Image.new("RGB", (21, 13), (200, 40, 90))
    out = decode(save(img, tmp_path / f"a{ext}", fmt))
    assert out.mode == "RGB" and out.size == (21, 13)
    assert close(out.getpixel((10, 6)), (200, 40, 90), tol=8 if fmt != "GIF" else 40)


def test_pgm_grayscale(tmp_path):
    out = decode(save(Image.new("L", (5, 4), 77), tmp_path / "g.pgm"))
    assert out.mode == "RGB" and out.getpixel((2, 2)) == (77, 77, 77)


def test_bytes_and_pil_sources(tmp_path):
    data = encode(noise(30, 20), "PNG")
    from_bytes = decode(data)
    from_pil = decode(Image.open(io.BytesIO(data)))
    assert from_bytes.size == (30, 20)
    assert np.array_equal(np.asarray(from_bytes), np.asarray(from_pil))


def test_returns_in_memory_copy_and_closes_files(tmp_path):
    path = save(noise(40, 30), tmp_path / "a.jpg")
    fd_dir = Path("/proc/self/fd")
    before = len(os.listdir(fd_dir)) if fd_dir.exists() else None
    outs = [decode(path) for _ in range(20)]
    if before is not None:
        assert len(os.listdir(fd_dir)) == before
    assert all(type(o) is Image.Image for o in outs)
    src = Image.new("RGB", (3, 3))
    assert decode(src) is not src


# --------------------------------------------------------------------------- failures


def test_truncated_jpeg(tmp_path):
    data = encode(noise(200, 150), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as err:
        decode(path)
    assert "cut.jpg" in err.value.message and "truncated" in err.value.message
    with pytest.raises(DecodeError):
        load_pixels(path, Preprocess())
    with pytest.raises(DecodeError, match="<bytes>"):
        decode(data[: len(data) // 2])


def test_truncated_png(tmp_path):
    data = encode(noise(64, 64), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DecodeError, match=r"cut\.png"):
        decode(path)


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty\.jpg.*empty"):
        decode(path)
    with pytest.raises(DecodeError, match="<bytes>"):
        decode(b"")


def test_text_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n" * 10)
    with pytest.raises(DecodeError) as err:
        decode(path)
    assert "notes.jpg" in str(err.value) and err.value.hint


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DecodeError, match=r"gone\.png.*not found"):
        decode(tmp_path / "gone.png")
    with pytest.raises(DecodeError, match="directory"):
        decode(tmp_path)


def test_png_named_jpg_decodes_by_content(tmp_path):
    img = noise(17, 9)
    out = decode(save(img, tmp_path / "really_png.jpg", "PNG"))
    assert np.array_equal(np.asarray(out), np.asarray(img))


def test_unsupported_format_is_refused(tmp_path):
    path = save(Image.new("RGB", (8, 8)), tmp_path / "icon.jpg", "ICO")
    with pytest.raises(DecodeError, match=r"icon\.jpg.*supported format"):
        decode(path)


def test_bad_argument_types():
    with pytest.raises(DecodeError):
        decode(123)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        decode(Image.new("RGB", (2, 2)), background=(0, 0, 300))


# --------------------------------------------------------------------------- colour policy


def test_cmyk_jpeg(tmp_path):
    out = decode(save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "c.jpg"))
    assert out.mode == "RGB" and close(out.getpixel((8, 8)), RED, tol=10)


def test_16bit_grayscale_png_scaling(tmp_path):
    arr = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(arr), tmp_path / "deep.png")
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")
    px = np.asarray(decode(path))
    assert px.shape == (1, 4, 3)
    assert px[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.array_equal(px[..., 0], px[..., 2])


def test_16bit_big_endian_and_32bit_modes():
    be = Image.frombytes("I;16B", (2, 1), struct.pack(">HH", 65535, 32768))
    assert np.asarray(decode(be))[0, :, 0].tolist() == [255, 128]
    small = Image.fromarray(np.array([[0, 65535, -5]], dtype=np.int32))
    assert np.asarray(decode(small))[0, :, 0].tolist() == [0, 255, 0]
    wide = Image.fromarray(np.array([[0, 2**31 - 1, 2**30]], dtype=np.int32))
    assert np.asarray(decode(wide))[0, :, 0].tolist() == [0, 255, 128]


def test_float_mode(tmp_path):
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32))
    assert np.asarray(decode(unit))[0, :, 1].tolist() == [0, 128, 255, 0]
    wide = Image.fromarray(np.array([[0.0, 100.0, 300.0, -3.0]], dtype=np.float32))
    path = save(wide, tmp_path / "f.tif")
    assert np.asarray(decode(path))[0, :, 1].tolist() == [0, 100, 255, 0]


def test_rgba_composited_on_background(tmp_path):
    arr = np.zeros((2, 3, 4), dtype=np.uint8)
    arr[0, 0] = (10, 200, 30, 0)  # fully transparent
    arr[0, 1] = (10, 200, 30, 255)  # opaque
    arr[0, 2] = (0, 0, 0, 128)  # half black
    path = save(Image.fromarray(arr), tmp_path / "a.png")
    out = decode(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (10, 200, 30)
    assert close(out.getpixel((2, 0)), (127, 127, 127), tol=1)
    custom = decode(path, background=(1, 2, 3))
    assert custom.getpixel((0, 0)) == (1, 2, 3)
    assert custom.getpixel((1, 0)) == (10, 200, 30)


def test_la_and_premultiplied_modes(tmp_path):
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (0, 0))
    la.putpixel((1, 0), (0, 255))
    out = decode(save(la, tmp_path / "la.png"), background=(0, 128, 0))
    assert out.getpixel((0, 0)) == (0, 128, 0) and out.getpixel((1, 0)) == (0, 0, 0)
    assert decode(Image.new("RGBa", (1, 1), (9, 9, 9, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert decode(Image.new("La", (1, 1), (0, 255))).getpixel((0, 0)) == (0, 0, 0)
    assert decode(Image.new("PA", (1, 1), (0, 0))).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency(tmp_path, fmt):
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    path = save(img, tmp_path / f"p.{fmt.lower()}", fmt, transparency=0)
    out = decode(path, background=(7, 8, 9))
    assert out.getpixel((0, 0)) == (7, 8, 9) and out.getpixel((1, 0)) == RED
    img.info.pop("transparency", None)
    assert decode(img).getpixel((0, 0)) == BLUE


def test_grayscale_bilevel_and_other_modes(tmp_path):
    assert decode(Image.new("L", (1, 1), 50)).getpixel((0, 0)) == (50, 50, 50)
    bilevel = save(Image.new("1", (3, 1), 1), tmp_path / "b.png")
    assert decode(bilevel).getpixel((1, 0)) == (255, 255, 255)
    red = Image.new("RGB", (1, 1), RED)
    assert close(decode(red.convert("YCbCr")).getpixel((0, 0)), RED, tol=4)
    assert close(decode(red.convert("HSV")).getpixel((0, 0)), RED, tol=4)
    white_lab = Image.new("LAB", (1, 1), (255, 128, 128))
    assert close(decode(white_lab).getpixel((0, 0)), (255, 255, 255), tol=4)


def test_exif_orientation(tmp_path):
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 8, 8))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = save(img, tmp_path / "rot.jpg", quality=95, exif=exif.tobytes())
    out = decode(path)
    assert out.size == (20, 40)
    assert close(out.getpixel((16, 3)), RED, tol=40)
    assert close(out.getpixel((3, 3)), BLUE, tol=40)
    px = load_pixels(path, Preprocess(size=(40, 20)))
    assert px.shape == (40, 20, 3) and close(px[3, 16], RED, tol=40)


def test_exif_orientation_on_in_memory_image(tmp_path):
    img = Image.new("RGB", (40, 20), BLUE)
    exif = Image.Exif()
    exif[0x0112] = 8
    path = save(img, tmp_path / "rot.jpg", exif=exif.tobytes())
    with Image.open(path) as opened:
        assert decode(opened).size == (20, 40)
        assert to_pixels(opened, Preprocess(size=(40, 20))).shape == (40, 20, 3)


def test_one_pixel_image(tmp_path):
    path = save(Image.new("RGB", (1, 1), GREEN), tmp_path / "one.png")
    assert decode(path).size == (1, 1)
    for mode in ("stretch", "shorter"):
        px = load_pixels(path, Preprocess(size=(5, 7), resize=mode))
        assert px.shape == (5, 7, 3) and (px == GREEN).all()


# --------------------------------------------------------------------------- bombs


def _bilevel_png(width: int, height: int) -> bytes:
    """A real, valid all-black 1-bit PNG of any size, built without holding its pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    row = b"\0" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(1)
    block = row * 500
    parts = [comp.compress(block) for _ in range(height // 500)]
    parts += [comp.compress(row * (height % 500)), comp.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def test_small_limit_refuses(tmp_path):
    path = save(Image.new("RGB", (10, 10)), tmp_path / "ten.png")
    with pytest.raises(DecodeError, match=r"ten\.png.*10x10.*limit of 99"):
        decode(path, max_pixels=99)
    assert decode(path, max_pixels=100).size == (10, 10)
    with pytest.raises(DecodeError):
        load_pixels(path, Preprocess(), max_pixels=50)


def test_real_bomb_refused_by_default(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_bilevel_png(14_000, 14_000))  # 196M px > DEFAULT_MAX_PIXELS
    assert path.stat().st_size < 200_000
    loads: list[int] = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1) or original(self))
    with pytest.raises(DecodeError, match=r"bomb\.png") as err:
        decode(path)
    assert err.value.hint
    assert loads == []  # refused from the header, before any pixel was decoded


def test_bomb_below_pils_hard_limit_uses_our_limit_without_warnings(tmp_path):
    data = _bilevel_png(10_000, 10_000)  # 100M px: PIL only warns, we refuse
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DecodeError, match="50000000"):
            decode(data, max_pixels=50_000_000)
    assert caught == []


def test_decoding_in_threads_is_quiet_and_leaves_the_warning_filters_alone():
    bomb = _bilevel_png(10_000, 10_000)  # Pillow warns when it opens this
    photo = encode(noise(800, 600), "JPEG")

    def work(index: int) -> None:
        if index % 5:
            decode(photo)
        else:
            with pytest.raises(DecodeError):
                decode(bomb, max_pixels=50_000_000)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(150)))
        # catch_warnings() inside decode used to restore snapshots out of order here.
        assert warnings.filters == filters
        assert caught == []
        with Image.open(io.BytesIO(bomb)):
            pass  # outside imgcls, Pillow's own warnings still reach the user
    assert [w.category for w in caught] == [Image.DecompressionBombWarning]


# --------------------------------------------------------------------------- JPEG draft


def test_draft_used_for_small_targets(tmp_path, spy_draft):
    path = save(noise(1600, 1200, seed=3), tmp_path / "big.jpg", quality=90)
    pre = Preprocess(size=(64, 64))
    fast = load_pixels(path, pre)
    assert spy_draft == [("RGB", (64, 64), (1600, 1200))]
    assert fast.shape == (64, 64, 3) and fast.dtype == np.uint8 and fast.flags.c_contiguous
    spy_draft.clear()
    full = load_pixels(path, pre, draft=False)
    assert spy_draft == []
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 4


def test_draft_size_is_never_undershot(tmp_path, spy_draft):
    path = save(noise(1600, 1200), tmp_path / "big.jpg")
    assert decode(path, draft_size=(64, 64)).size == (200, 150)
    assert decode(path, draft_size=(300, 100)).size == (400, 300)
    spy_draft.clear()
    assert decode(path, draft_size=(900, 500)).size == (1600, 1200)  # not half: no draft
    assert spy_draft == []


def test_draft_for_shorter_mode_covers_crop(tmp_path, spy_draft):
    path = save(noise(1600, 800), tmp_path / "wide.jpg")
    pre = Preprocess(size=(56, 56), resize="shorter", crop_fraction=0.875)
    assert load_pixels(path, pre).shape == (56, 56, 3)
    # Shorter side must reach 64, so the wide image needs 128x64 before resizing.
    assert spy_draft[0][1] == (128, 64)


def test_draft_respects_exif_rotation(tmp_path, spy_draft):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(noise(1600, 800), tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_pixels(path, Preprocess(size=(400, 100))).shape == (400, 100, 3)
    assert spy_draft[0][1] == (400, 100)  # stored orientation of an upright 100x400 request


def test_no_draft_for_png(tmp_path, spy_draft):
    load_pixels(save(noise(400, 400), tmp_path / "a.png"), Preprocess(size=(16, 16)))
    assert spy_draft == []


# --------------------------------------------------------------------------- geometry


def test_stretch_uses_height_width_order():
    out = resize_to(noise(100, 100), Preprocess(size=(30, 50)))
    assert out.shape == (30, 50, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def test_stretch_versus_shorter_crop():
    img = Image.new("RGB", (200, 100), BLUE)
    img.paste(GREEN, (0, 0, 10, 100))  # stripe at the far left
    stretch = resize_to(img, Preprocess(size=(30, 50), interpolation="nearest"))
    shorter = resize_to(img, Preprocess(size=(30, 50), resize="shorter", interpolation="nearest"))
    assert stretch.shape == shorter.shape == (30, 50, 3)
    assert tuple(stretch[15, 0]) == GREEN
    assert (shorter == BLUE).all()  # scaled to 60x30, centre crop drops the stripe


def test_shorter_crop_fraction_centre_crop():
    img = Image.new("RGB", (64, 64), RED)
    img.paste(BLUE, (4, 4, 60, 60))
    out = resize_to(img, Preprocess(size=(56, 56), resize="shorter", crop_fraction=0.875))
    assert (out == BLUE).all()
    assert images._cover_size(
        (500, 375), Preprocess(size=(224, 224), resize="shorter", crop_fraction=0.875)
    ) == (341, 256)


def test_shorter_non_square_target_keeps_aspect():
    out = resize_to(noise(300, 300), Preprocess(size=(20, 40), resize="shorter"))
    assert out.shape == (20, 40, 3)


def test_bad_crop_fraction():
    with pytest.raises(ConfigError):
        resize_to(noise(10, 10), Preprocess(size=(4, 4), resize="shorter", crop_fraction=0.0))


def test_bad_geometry_names():
    with pytest.raises(ConfigError, match="interpolation"):
        resize_to(noise(4, 4), Preprocess(interpolation="cubic"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="resize must be 'stretch' or 'shorter'"):
        resize_to(noise(4, 4), Preprocess(resize="fit"))  # type: ignore[arg-type]


def test_resize_to_accepts_non_rgb():
    assert resize_to(Image.new("L", (9, 9), 3), Preprocess(size=(2, 2)))[0, 0].tolist() == [3] * 3


# --------------------------------------------------------------------------- to_pixels


def test_to_pixels_arrays():
    pre = Preprocess(size=(4, 6), interpolation="nearest")
    gray = np.full((8, 12), 40, dtype=np.uint8)
    assert (to_pixels(gray, pre) == 40).all()
    assert (to_pixels(gray[..., None], pre) == 40).all()
    rgb = np.zeros((8, 12, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    assert (to_pixels(rgb, pre)[..., 1] == 200).all() and to_pixels(rgb, pre).shape == (4, 6, 3)
    rgba = np.zeros((8, 12, 4), dtype=np.uint8)
    assert (to_pixels(rgba, pre, background=(5, 6, 7)) == (5, 6, 7)).all()
    assert (to_pixels(np.full((8, 12, 3), 0.5, dtype=np.float32), pre) == 128).all()
    assert (to_pixels(np.full((8, 12), 100.0), pre) == 100).all()
    assert (to_pixels(np.full((8, 12), 65535, dtype=np.uint16), pre) == 255).all()
    assert (to_pixels(np.ones((8, 12), dtype=bool), pre) == 255).all()
    assert (to_pixels(np.full((8, 12), 7, dtype=np.int64), pre) == 7).all()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 3, 3, 3), np.uint8),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.full((4, 4), 300, np.int64),
        np.zeros((4, 4), np.complex64),
    ],
)
def test_to_pixels_rejects_bad_arrays(bad):
    with pytest.raises(DecodeError, match="<array>"):
        to_pixels(bad, Preprocess())


def test_to_pixels_pil_images():
    pre = Preprocess(size=(3, 3))
    rgba = Image.new("RGBA", (5, 5), (0, 0, 0, 0))
    assert (to_pixels(rgba, pre) == 255).all()
    assert rgba.mode == "RGBA"  # input untouched
    assert (to_pixels(Image.new("L", (5, 5), 9), pre) == 9).all()
    deep = Image.fromarray(np.full((5, 5), 65535, dtype=np.uint16))
    assert (to_pixels(deep, pre) == 255).all()
    with pytest.raises(DecodeError):
        to_pixels("a.jpg", pre)  # type: ignore[arg-type]


def test_same_pixels_from_file_and_memory(tmp_path):
    img = noise(50, 40)
    pre = Preprocess(size=(24, 32))
    path = save(img, tmp_path / "x.png")
    assert np.array_equal(load_pixels(path, pre), to_pixels(img, pre))
    assert np.array_equal(load_pixels(path, pre), to_pixels(np.asarray(img), pre))


def test_config_errors_are_not_disguised_as_decode_errors(tmp_path):
    path = save(noise(400, 300), tmp_path / "a.jpg")
    with pytest.raises(ConfigError, match="crop_fraction"):
        load_pixels(path, Preprocess(size=(8, 8), resize="shorter", crop_fraction=1.5))


def test_jpeg_named_png_is_still_drafted(tmp_path, spy_draft):
    path = save(noise(800, 600), tmp_path / "photo.png", "JPEG")
    assert load_pixels(path, Preprocess(size=(32, 32))).shape == (32, 32, 3)
    assert len(spy_draft) == 1
