"""Decode every image once into a uint8 array (in memory or memory-mapped on disk).

Decoding a photo costs more than a small CNN's training step, so later epochs
read pixels at the model's input size instead of decoding again.
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
from ..specs import Preprocess, Sample
from . import cache_dir, fingerprint

CACHE_MODES = ("memory", "disk", "none")
CACHE_VERSION = 1


@dataclass
class DecodedImages:
    """Pixels (N, H, W, 3) uint8 and labels for the samples that decoded."""

    pixels: np.ndarray
    labels: np.ndarray
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def decode_samples(
    samples: Sequence[Sample],
    preprocess: Preprocess,
    mode: str = "memory",
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DecodedImages:
    """Decode ``samples`` at ``preprocess.size``; unreadable files are skipped and listed."""
    if mode not in ("memory", "disk"):
        raise ConfigError(f"Unknown cache mode {mode!r}.", f"Use one of {', '.join(CACHE_MODES)}.")
    if mode == "disk":
        key = _cache_key(samples, preprocess)
        cached = _load_disk(key)
        if cached is not None:
            return cached
    h, w = preprocess.size
    pixels = _allocate(len(samples), h, w, mode)
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
    result = _select(samples, pixels, ok, skipped)
    if mode == "disk":
        result = _store_disk(key, result)
    return result


def _allocate(n: int, h: int, w: int, mode: str) -> np.ndarray:
    return np.empty((n, h, w, 3), dtype=np.uint8)


def _select(samples: Sequence[Sample], pixels: np.ndarray, ok: np.ndarray,
            skipped: list[tuple[Path, str]]) -> DecodedImages:
    labels = np.array([label for _, label in samples], dtype=np.int64)
    paths = [Path(path) for path, _ in samples]
    if not ok.all():
        keep = np.flatnonzero(ok)
        pixels, labels = pixels[keep], labels[keep]
        paths = [paths[i] for i in keep]
    skipped.sort(key=lambda item: str(item[0]))
    return DecodedImages(pixels, labels, paths, skipped)


def _cache_key(samples: Sequence[Sample], preprocess: Preprocess) -> str:
    payload = json.dumps([CACHE_VERSION, fingerprint(list(samples)), preprocess.to_dict()])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _disk_paths(key: str) -> tuple[Path, Path]:
    folder = cache_dir() / "decoded"
    return folder / f"{key}.npy", folder / f"{key}.json"


def _load_disk(key: str) -> DecodedImages | None:
    array_path, index_path = _disk_paths(key)
    if not (array_path.exists() and index_path.exists()):
        return None
    try:
        index = json.loads(index_path.read_text())
        pixels = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # a damaged cache entry is rebuilt, never trusted
    if len(pixels) != len(index["labels"]):
        return None
    return DecodedImages(
        pixels, np.asarray(index["labels"], dtype=np.int64), [Path(p) for p in index["paths"]],
        [(Path(p), reason) for p, reason in index["skipped"]],
    )


def _store_disk(key: str, decoded: DecodedImages) -> DecodedImages:
    array_path, index_path = _disk_paths(key)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = array_path.with_suffix(f".tmp{os.getpid()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=decoded.pixels.shape)
    out[:] = decoded.pixels
    out.flush()
    del out
    os.replace(tmp, array_path)
    index = {"labels": decoded.labels.tolist(), "paths": [str(p) for p in decoded.paths],
             "skipped": [[str(p), reason] for p, reason in decoded.skipped]}
    tmp_index = index_path.with_suffix(f".tmp{os.getpid()}")
    tmp_index.write_text(json.dumps(index))
    os.replace(tmp_index, index_path)
    return _load_disk(key) or decoded
