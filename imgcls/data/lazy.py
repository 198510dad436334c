"""``--cache none``: decode on access, every epoch, keeping nothing between epochs.

For data sets too large for memory or disk caching. Files whose header cannot
be read are found up front and skipped; a file that fails later (truncated
pixel data) is skipped when first met: a :class:`SkippedImageWarning` names
it, another image takes its place in the batch (so an epoch never dies
half-way), and it is listed in ``skipped``, also when a DataLoader worker
process met it: workers append to a small log file the main process reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DecodeError
from ..images import load_pixels, probe
from ..specs import Preprocess, Sample
from ..system import default_workers


class SkippedImageWarning(UserWarning):
    """An image that could not be decoded was left out of training."""


class LazyImages:
    """Same interface as :class:`~imgcls.data.cache.DecodedImages`, decoding on access."""

    lazy = True

    def __init__(self, samples: Sequence[Sample], preprocess: Preprocess,
                 skipped: list[tuple[Path, str]] | None = None, workers: int | None = None
                 ) -> None:
        self.paths = [Path(path) for path, _ in samples]
        self.labels = np.array([label for _, label in samples], dtype=np.int64)
        self.preprocess = preprocess
        self.scan_skipped = list(skipped or [])
        self.workers = workers or default_workers()
        self._bad: set[int] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        handle, self._skip_log = tempfile.mkstemp(prefix="imgcls-skipped-", suffix=".jsonl")
        os.close(handle)
        weakref.finalize(self, _remove_log, self._skip_log, os.getpid())

    @classmethod
    def scan(cls, samples: Sequence[Sample], preprocess: Preprocess, workers: int | None = None,
             on_progress: Callable[[int], None] | None = None) -> LazyImages:
        """Read every header (cheap, no pixels) and leave out files that are not images."""
        skipped: list[tuple[Path, str]] = []

        def readable(sample: Sample) -> bool:
            try:
                probe(sample[0])
                return True
            except DecodeError as exc:
                skipped.append((Path(sample[0]), exc.message))
                return False

        keep = []
        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            for done, (sample, ok) in enumerate(
                    zip(samples, pool.map(readable, samples), strict=True), 1):
                if ok:
                    keep.append(sample)
                if on_progress:
                    on_progress(done)
        skipped.sort(key=lambda item: str(item[0]))
        return cls(keep, preprocess, skipped, workers)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def skipped(self) -> list[tuple[Path, str]]:
        """Files left out: unreadable headers up front, then those met while training."""
        met: dict[int, str] = {}
        try:
            with open(self._skip_log, encoding="utf-8") as log:
                for line in log:
                    index, message = json.loads(line)
                    met.setdefault(int(index), str(message))
        except (OSError, ValueError):
            pass  # the log is gone only after this object; a torn last line is retried
        return self.scan_skipped + sorted((self.paths[i], m) for i, m in met.items())

    @property
    def pixels(self) -> LazyPixels:
        return LazyPixels(self)

    def load(self, index: int) -> np.ndarray:
        """Decode one image (H, W, 3) uint8; raises DecodeError for a bad file."""
        return load_pixels(self.paths[index], self.preprocess)

    def take(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Decode ``indices`` in parallel; an unreadable one is replaced by a readable one."""
        chosen = [int(i) for i in indices]
        decoded = list(self._executor().map(self._try_load, chosen))
        for position, pixels in enumerate(decoded):
            while pixels is None:
                chosen[position] = self._replacement(chosen[position])
                pixels = self._try_load(chosen[position])
            decoded[position] = pixels
        height, width = self.preprocess.size
        batch = np.stack(decoded) if decoded else np.empty((0, height, width, 3), np.uint8)
        return batch, self.labels[np.asarray(chosen, dtype=np.intp)]

    def _try_load(self, index: int) -> np.ndarray | None:
        if index in self._bad:
            return None
        try:
            return self.load(index)
        except DecodeError as exc:
            with self._lock:
                if index in self._bad:
                    return None
                self._bad.add(index)
                # One short append per line is atomic, also across worker processes.
                with open(self._skip_log, "a", encoding="utf-8") as log:
                    log.write(json.dumps([index, exc.message]) + "\n")
            warnings.warn(f"Skipped an unreadable image. {exc.message}", SkippedImageWarning,
                          stacklevel=1)
            return None

    def _replacement(self, index: int) -> int:
        for step in range(1, len(self) + 1):
            candidate = (index + step) % len(self)
            if candidate not in self._bad:
                return candidate
        raise DataError(f"None of the {len(self)} images could be decoded.",
                        "Run `imgcls data check` on the data to see what is wrong.")

    def _executor(self) -> ThreadPoolExecutor:
        # Threads do not survive fork: each DataLoader worker process makes its own pool.
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(max_workers=self.workers)
            self._pool_pid = os.getpid()
        return self._pool

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_pool=None, _pool_pid=0, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class LazyPixels:
    """``images.pixels`` for lazy images: indexing decodes."""

    def __init__(self, images: LazyImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.images), *self.images.preprocess.size, 3)

    def __getitem__(self, index: int | Sequence[int]) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self.images.load(int(index))
        return np.stack([self.images.load(int(i)) for i in index])


def _remove_log(path: str, owner_pid: int) -> None:
    # Forked DataLoader workers inherit this finaliser; only the creator removes the log.
    if os.getpid() == owner_pid:
        with contextlib.suppress(OSError):
            os.unlink(path)
