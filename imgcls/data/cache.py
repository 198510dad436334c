"""Decode every image once into a uint8 array (in memory or memory-mapped on disk).

Decoding a photo costs more than a small CNN's training step, so later epochs
read pixels at the model's input size instead of decoding again. ``--cache
none`` decodes on access instead (see :mod:`imgcls.data.lazy`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DecodeError
from ..images import load_pixels
from ..io import atomic_write_text
from ..specs import Preprocess, Sample
from ..system import cache_dir, default_workers
from . import fingerprint

CACHE_MODES = ("memory", "disk", "none")
CACHE_VERSION = 2


@dataclass
class DecodedImages:
    """Pixels (N, H, W, 3) uint8 and labels for the samples that decoded."""

    pixels: np.ndarray
    labels: np.ndarray
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (n, H, W, 3) and labels of ``indices``: one copy, no decoding."""
        index = np.asarray(indices, dtype=np.intp)
        return self.pixels[index], self.labels[index]


def decode_samples(
    samples: Sequence[Sample],
    preprocess: Preprocess,
    mode: str = "memory",
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DecodedImages:
    """Decode ``samples`` at ``preprocess.size``; unreadable files are skipped and listed.

    ``disk`` keeps the pixels in a memory-mapped file under the cache folder,
    keyed by the file list, sizes, mtimes, labels and preprocessing, and reuses
    it in later runs. ``none`` returns a :class:`~imgcls.data.lazy.LazyImages`
    that decodes on access, every epoch.
    """
    if mode not in CACHE_MODES:
        raise ConfigError(f"Unknown cache mode {mode!r}.", f"Use one of {', '.join(CACHE_MODES)}.")
    if mode == "none":
        from .lazy import LazyImages

        return LazyImages.scan(samples, preprocess, workers=workers, on_progress=on_progress)
    if mode == "memory":
        pixels = np.empty((len(samples), *preprocess.size, 3), dtype=np.uint8)
        ok, skipped = _decode_into(pixels, samples, preprocess, workers, on_progress)
        return _compact(samples, pixels, ok, skipped)
    key = _cache_key(samples, preprocess)
    cached = _load_disk(key)
    if cached is None:
        cached = _build_disk(key, samples, preprocess, workers, on_progress)
    elif on_progress:
        on_progress(len(samples))
    return cached


def _decode_into(pixels: np.ndarray, samples: Sequence[Sample], preprocess: Preprocess,
                 workers: int | None, on_progress: Callable[[int], None] | None
                 ) -> tuple[np.ndarray, list[tuple[Path, str]]]:
    ok = np.zeros(len(samples), dtype=bool)
    skipped: list[tuple[Path, str]] = []

    def work(index: int) -> None:
        path = samples[index][0]
        try:
            pixels[index] = load_pixels(path, preprocess)
            ok[index] = True
        except DecodeError as exc:
            skipped.append((Path(path), exc.message))

    # PIL releases the GIL while decoding and resizing, so threads scale.
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for done, _ in enumerate(pool.map(work, range(len(samples))), start=1):
            if on_progress:
                on_progress(done)
    skipped.sort(key=lambda item: str(item[0]))
    return ok, skipped


def _compact(samples: Sequence[Sample], pixels: np.ndarray, ok: np.ndarray,
             skipped: list[tuple[Path, str]]) -> DecodedImages:
    """Drop the rows that failed, in place (no second copy of the pixels)."""
    keep = np.flatnonzero(ok)
    for row, source in enumerate(keep):
        if row != source:  # keep is ascending, so source >= row: never overwrites a kept row
            pixels[row] = pixels[source]
    labels = np.array([samples[i][1] for i in keep], dtype=np.int64)
    paths = [Path(samples[i][0]) for i in keep]
    return DecodedImages(pixels[: len(keep)], labels, paths, skipped)


def _cache_key(samples: Sequence[Sample], preprocess: Preprocess) -> str:
    payload = json.dumps([CACHE_VERSION, fingerprint(list(samples)), preprocess.to_dict()])
    return hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def _disk_paths(key: str) -> tuple[Path, Path]:
    folder = cache_dir() / "decoded"
    return folder / f"{key}.npy", folder / f"{key}.json"


def _build_disk(key: str, samples: Sequence[Sample], preprocess: Preprocess,
                workers: int | None, on_progress: Callable[[int], None] | None
                ) -> DecodedImages:
    """Decode straight into a memory-mapped file, so data larger than RAM fits."""
    array_path, index_path = _disk_paths(key)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = array_path.with_suffix(f".tmp{os.getpid()}.npy")
    shape = (max(1, len(samples)), *preprocess.size, 3)  # numpy cannot map an empty file
    pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    try:
        ok, skipped = _decode_into(pixels, samples, preprocess, workers, on_progress)
        decoded = _compact(samples, pixels, ok, skipped)
        index = {"count": len(decoded), "labels": decoded.labels.tolist(),
                 "paths": [str(p) for p in decoded.paths],
                 "skipped": [[str(p), reason] for p, reason in decoded.skipped]}
        pixels.flush()
        del pixels, decoded  # unmap before renaming (required on Windows)
        os.replace(tmp, array_path)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(index_path, json.dumps(index))
    loaded = _load_disk(key)
    if loaded is None:
        raise ConfigError(f"The decoded-image cache in {array_path.parent} cannot be read back.",
                          "Check free disk space, or use --cache memory.")
    return loaded


def _load_disk(key: str) -> DecodedImages | None:
    array_path, index_path = _disk_paths(key)
    if not (array_path.exists() and index_path.exists()):
        return None
    try:
        index = json.loads(index_path.read_text())
        pixels = np.load(array_path, mmap_mode="r")
        count = int(index["count"])
        labels = np.asarray(index["labels"], dtype=np.int64)
        paths = [Path(p) for p in index["paths"]]
        skipped = [(Path(p), str(reason)) for p, reason in index["skipped"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged cache entry is rebuilt, never trusted
    if not count <= len(pixels) or len(labels) != count or len(paths) != count:
        return None
    return DecodedImages(pixels[:count], labels, paths, skipped)
