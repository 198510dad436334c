"""The decoded-image cache: memory, disk (memory-mapped, reused) and none (lazy)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from imgcls.data import cache as cache_module
from imgcls.data import lazy as lazy_module
from imgcls.data.cache import CACHE_MODES, DecodedImages, decode_samples
from imgcls.data.lazy import LazyImages, SkippedImageWarning
from imgcls.data.loader import make_loader
from imgcls.errors import ConfigError, DataError
from imgcls.specs import Preprocess

from .helpers import write_class_folders

PRE = Preprocess(size=(16, 16))
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


@pytest.fixture
def samples(tmp_path) -> list[tuple[Path, int]]:
    root = write_class_folders(tmp_path / "data", COLOURS, per_class=6, size=20)
    return [(path, 0) for path in sorted((root / "red").iterdir())] + \
        [(path, 1) for path in sorted((root / "blue").iterdir())]


def add_broken(samples: list, folder: Path) -> list:
    """A header that is not an image, and a PNG cut in half (header fine, pixels not)."""
    junk = folder / "junk.png"
    junk.write_bytes(b"not an image at all")
    good = samples[0][0].read_bytes()
    cut = folder / "cut.png"
    cut.write_bytes(good[: len(good) // 2])
    return [samples[0], (junk, 0), samples[1], (cut, 0), *samples[2:]]


def colour_matches_label(pixels: np.ndarray, labels: np.ndarray) -> bool:
    red = pixels[..., 0].mean((1, 2)) > pixels[..., 2].mean((1, 2))
    return bool(np.array_equal(red, labels == 0))


def test_modes_are_listed():
    assert CACHE_MODES == ("memory", "disk", "none")
    with pytest.raises(ConfigError, match="cache mode"):
        decode_samples([], PRE, mode="ram")


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_unreadable_files_are_skipped_and_rows_stay_aligned(samples, tmp_path, mode):
    decoded = decode_samples(add_broken(samples, tmp_path), PRE, mode=mode)
    assert isinstance(decoded, DecodedImages) and len(decoded) == 12
    assert [path.name for path, _ in decoded.skipped] == ["cut.png", "junk.png"]
    assert all("Cannot decode" in reason for _, reason in decoded.skipped)
    assert decoded.pixels.shape == (12, 16, 16, 3) and decoded.pixels.dtype == np.uint8
    assert colour_matches_label(np.asarray(decoded.pixels), decoded.labels)
    assert [p.name for p in decoded.paths] == [p.name for p, _ in samples]


def test_disk_cache_is_memory_mapped_and_reused(samples, monkeypatch):
    first = decode_samples(samples, PRE, mode="disk")
    assert isinstance(first.pixels, np.memmap)
    monkeypatch.setattr(cache_module, "load_pixels", _must_not_decode)
    progress = []
    again = decode_samples(samples, PRE, mode="disk", on_progress=progress.append)
    assert np.array_equal(again.pixels, first.pixels) and progress == [12]
    assert np.array_equal(again.labels, first.labels)


def test_disk_cache_key_follows_files_and_preprocessing(samples, monkeypatch):
    decode_samples(samples, PRE, mode="disk")
    path = samples[0][0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    decoded: list[Path] = []
    original = cache_module.load_pixels
    monkeypatch.setattr(cache_module, "load_pixels",
                        lambda p, pre: decoded.append(p) or original(p, pre))
    decode_samples(samples, PRE, mode="disk")
    assert len(decoded) == 12  # a changed file means a new cache entry
    decoded.clear()
    decode_samples(samples, Preprocess(size=(8, 8)), mode="disk")
    assert len(decoded) == 12


def test_damaged_disk_cache_is_rebuilt(samples):
    decode_samples(samples, PRE, mode="disk")
    folder = Path(os.environ["IMGCLS_CACHE_DIR"]) / "decoded"
    for index in folder.glob("*.json"):
        index.write_text("{not json")
    rebuilt = decode_samples(samples, PRE, mode="disk")
    assert len(rebuilt) == 12 and colour_matches_label(np.asarray(rebuilt.pixels),
                                                       rebuilt.labels)


def _must_not_decode(*_args, **_kwargs):
    raise AssertionError("decoded although the cache should have been used")


# --------------------------------------------------------------------------- none (lazy)


def test_none_decodes_on_access_every_epoch(samples, monkeypatch):
    lazy = decode_samples(samples, PRE, mode="none")
    assert isinstance(lazy, LazyImages) and len(lazy) == 12 and lazy.skipped == []
    assert lazy.pixels.shape == (12, 16, 16, 3)
    assert colour_matches_label(np.stack([lazy.pixels[i] for i in range(12)]), lazy.labels)
    calls = []
    original = lazy_module.load_pixels
    monkeypatch.setattr(lazy_module, "load_pixels",
                        lambda p, pre: calls.append(p) or original(p, pre))
    loader = make_loader(lazy, 4, shuffle=True, workers=0)
    for _ in range(2):
        seen = sum(len(labels) for _, labels in loader)
        assert seen == 12
    assert len(calls) == 24  # nothing kept between epochs


def test_none_skips_bad_headers_up_front_and_bad_pixels_when_met(samples, tmp_path):
    lazy = decode_samples(add_broken(samples, tmp_path), PRE, mode="none")
    assert len(lazy) == 13  # junk.png is not an image; cut.png has a valid header
    assert [p.name for p, _ in lazy.skipped] == ["junk.png"]
    loader = make_loader(lazy, 13, workers=0)
    with pytest.warns(SkippedImageWarning, match=r"cut\.png"):
        images, labels = next(iter(loader))
    assert images.shape == (13, 3, 16, 16)  # the broken one's slot went to another image
    assert colour_matches_label(images.permute(0, 2, 3, 1).numpy(), labels.numpy())
    assert [p.name for p, _ in lazy.skipped] == ["junk.png", "cut.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # met once, skipped quietly afterwards
        assert len(next(iter(loader))[1]) == 13


def test_none_with_worker_processes_reports_skips_to_the_main_process(samples, tmp_path):
    lazy = decode_samples(add_broken(samples, tmp_path), PRE, mode="none")
    loader = make_loader(lazy, 5, workers=1)
    assert loader.num_workers == 1 and sum(len(labels) for _, labels in loader) == 13
    assert sorted(p.name for p, _ in lazy.skipped) == ["cut.png", "junk.png"]


def test_none_with_nothing_readable_is_a_data_error(tmp_path):
    good = tmp_path / "g.png"
    write_class_folders(tmp_path / "src", {"a": (1, 2, 3)}, per_class=1)
    data = next((tmp_path / "src" / "a").iterdir()).read_bytes()
    good.write_bytes(data[: len(data) // 2])
    lazy = decode_samples([(good, 0)], PRE, mode="none")
    with pytest.warns(SkippedImageWarning), pytest.raises(DataError, match="None of the 1"):
        lazy.take([0])
