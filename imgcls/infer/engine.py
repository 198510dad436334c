"""The streaming batch engine: decode workers feed fixed-size batches to a model.

Paths stream in, results stream out; at any moment only a bounded window of
decoded chunks is held, so memory does not grow with the number of files.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import numpy as np

from ..errors import ConfigError, DecodeError
from ..images import load_pixels
from ..manifest import manifest_task
from ..multilabel import decide, label_names, thresholds_for
from ..specs import Preprocess
from ..system import default_workers

BACKENDS = ("process", "thread")
# Pillow holds the GIL for part of each decode, so threads stop scaling at about
# one core while processes scale with the cores. The pixels sent back are small
# (a model-sized uint8 image), so the IPC costs little. Measurements and the
# commands that produce them: docs/inference.md.
DEFAULT_BACKEND = "process"
CHUNK = 16  # images per decode task: amortises IPC without starving workers


@dataclass
class Prediction:
    """``labels``/``scores``: the top-k classes, best first. A multi-label model also
    gives ``label_set``, the classes at or above their thresholds (in class order,
    possibly empty), and ``class_probs``, every class's probability in class order."""

    path: str
    labels: list[str]
    scores: list[float]
    label_set: tuple[str, ...] | None = None
    class_probs: list[float] | None = None

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def confidence(self) -> float:
        return self.scores[0]

    @property
    def probabilities(self) -> dict[str, float]:
        """The top-k labels and their probabilities, best first."""
        return dict(zip(self.labels, self.scores, strict=True))


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class DecodedChunk:
    paths: list[str]
    pixels: np.ndarray  # N x H x W x 3 uint8, one row per entry of paths
    failures: list[Failure]


# The parent's pid as a decode worker saw it at start (None in the parent itself).
_PARENT_PID: int | None = None
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_init() -> None:
    """Make this decode worker die with its parent, even if the parent is SIGKILLed."""
    global _PARENT_PID
    _PARENT_PID = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no usable libc: the getppid check remains
            pass
    _exit_if_orphaned()  # the parent may have died before prctl took effect


def _exit_if_orphaned() -> None:
    # Portable fallback: an orphan is re-parented, so its parent pid changes.
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
        os._exit(1)


def decode_chunk(paths: list[str], preprocess: Preprocess) -> DecodedChunk:
    """Decode paths with the shared decoder; unreadable files become Failures."""
    _exit_if_orphaned()
    good: list[str] = []
    arrays: list[np.ndarray] = []
    failures: list[Failure] = []
    for path in paths:
        try:
            arrays.append(load_pixels(path, preprocess))
            good.append(path)
        except DecodeError as exc:
            failures.append(Failure(path, exc.message))
    height, width = preprocess.size
    pixels = np.stack(arrays) if arrays else np.empty((0, height, width, 3), np.uint8)
    return DecodedChunk(good, pixels, failures)


def _process_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds and they share the parent's imports;
    # spawn would re-import the CLI (and torch) in every worker. The workers only
    # run Pillow and numpy, never onnxruntime or torch, so forking is safe here.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class DecodePool:
    """Decode workers (processes or threads) returning chunks in input order."""

    def __init__(self, workers: int | None = None, backend: str = DEFAULT_BACKEND) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"Unknown decode backend {backend!r}.",
                              "Use --decode process or --decode thread.")
        if workers is not None and workers < 1:
            raise ConfigError("--workers must be at least 1.", "For example: --workers 2.")
        self.workers = workers or default_workers()
        self.backend = backend
        self._executor: Executor | None = None

    def __enter__(self) -> DecodePool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._executor is not None:
            return
        if self.backend == "thread":
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="imgcls-decode")
            return
        # PDEATHSIG fires when the thread that forked the worker ends, so workers are
        # started here, from the caller's thread (the first submit below starts them all).
        self._executor = ProcessPoolExecutor(self.workers, mp_context=_process_context(),
                                             initializer=_worker_init)
        # The first task makes the executor start every worker now, while the
        # caller may still be single-threaded (before onnxruntime's thread pool).
        self._executor.submit(os.getpid).result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def imap(self, paths: Iterable[str], preprocess: Preprocess, chunk: int = CHUNK,
             window: int | None = None) -> Iterator[DecodedChunk]:
        """Decode ``paths`` in chunks, at most ``window`` chunks in flight, in order."""
        self.start()
        assert self._executor is not None
        window = window or 2 * self.workers + 2
        iterator = iter(paths)
        pending: deque[Future[DecodedChunk]] = deque()

        def submit_next() -> None:
            part = list(islice(iterator, chunk))
            if part:
                pending.append(self._executor.submit(decode_chunk, part, preprocess))

        for _ in range(window):
            submit_next()
        while pending:
            done = pending.popleft().result()
            submit_next()
            yield done


# --------------------------------------------------------------------------- statistics


@dataclass
class EngineStats:
    """Counts and a bounded sample of batch latencies (constant memory on any run)."""

    images: int = 0
    failed: int = 0
    batches: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    sample_size: int = 4096
    _latencies: list[float] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    def add_batch(self, images: int, seconds: float) -> None:
        self.images += images
        self.batches += 1
        # Reservoir sampling keeps an unbiased sample of every batch's latency.
        if len(self._latencies) < self.sample_size:
            self._latencies.append(seconds)
        else:
            slot = self._rng.randrange(self.batches)
            if slot < self.sample_size:
                self._latencies[slot] = seconds

    @property
    def seconds(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        if not self._latencies:
            return 0.0
        return float(np.percentile(self._latencies, percentile) * 1000.0)


# --------------------------------------------------------------------------- engine


class PixelModel(Protocol):
    manifest: dict

    def probabilities(self, pixels: np.ndarray) -> np.ndarray: ...


def ranked_labels(probs: np.ndarray, classes: list[str],
                  k: int) -> list[tuple[list[str], list[float]]]:
    """The ``k`` most probable labels per row, best first, with their probabilities."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [([classes[i] for i in row], [float(p[i]) for i in row])
            for row, p in zip(order, probs, strict=True)]


def predict_stream(
    runner: PixelModel,
    paths: Iterable[str | os.PathLike],
    batch_size: int = 64,
    top_k: int = 1,
    workers: int | None = None,
    prefetch: int = 2,
    backend: str = DEFAULT_BACKEND,
    stats: EngineStats | None = None,
    pool: DecodePool | None = None,
    threshold: float | None = None,
) -> Iterator[Prediction | Failure]:
    """Classify ``paths`` while the next batches decode; yields results as they finish.

    Batches always hold ``batch_size`` images (the last may hold fewer), also when
    some files fail to decode. Failures are yielded as soon as they are found.
    ``pool`` reuses running decode workers (else ``workers``/``backend`` start some).
    ``threshold`` replaces a multi-label model's per-class thresholds.
    """
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1.", "For example: -b 64.")
    classes: list[str] = runner.manifest["classes"]
    decider = LabelSets.of(runner.manifest, threshold)
    preprocess = Preprocess.from_dict(runner.manifest["preprocess"])
    k = max(1, min(top_k, len(classes)))
    stats = stats if stats is not None else EngineStats()
    window = max(2, (prefetch + 1) * -(-batch_size // CHUNK))
    names = (os.fspath(p) for p in paths)
    batcher = _Batcher(batch_size)
    own_pool = pool is None
    pool = pool or DecodePool(workers, backend)
    try:
        for chunk in pool.imap(names, preprocess, window=window):
            stats.failed += len(chunk.failures)
            yield from chunk.failures
            batcher.add(chunk)
            while batcher.full():
                yield from _classify(runner, *batcher.take(), classes, k, stats, decider)
        if batcher.count:
            yield from _classify(runner, *batcher.take(), classes, k, stats, decider)
    finally:
        if own_pool:
            pool.close()
    stats.finished = time.perf_counter()


class _Batcher:
    """Collects decoded chunks and hands out exactly ``size`` images at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.paths: list[str] = []
        self.arrays: list[np.ndarray] = []
        self.count = 0

    def add(self, chunk: DecodedChunk) -> None:
        if chunk.paths:
            self.paths.extend(chunk.paths)
            self.arrays.append(chunk.pixels)
            self.count += len(chunk.paths)

    def full(self) -> bool:
        return self.count >= self.size

    def take(self) -> tuple[list[str], np.ndarray]:
        stacked = self.arrays[0] if len(self.arrays) == 1 else np.concatenate(self.arrays)
        n = min(self.size, self.count)
        paths, self.paths = self.paths[:n], self.paths[n:]
        rest = stacked[n:]
        self.arrays = [rest.copy()] if len(rest) else []
        self.count = len(rest)
        return paths, stacked[:n]


def _classify(runner: PixelModel, paths: list[str], pixels: np.ndarray, classes: list[str],
              k: int, stats: EngineStats, decider: LabelSets | None = None
              ) -> Iterator[Prediction]:
    started = time.perf_counter()
    probs = runner.probabilities(pixels)
    stats.add_batch(len(paths), time.perf_counter() - started)
    yield from predictions(paths, probs, classes, k, decider)


def predictions(paths: list[str], probs: np.ndarray, classes: list[str], k: int,
                decider: LabelSets | None = None) -> Iterator[Prediction]:
    """One Prediction per row of ``probs`` (shared by the engines and the Classifier)."""
    ranked = ranked_labels(probs, classes, k)
    if decider is None:
        for path, (labels, scores) in zip(paths, ranked, strict=True):
            yield Prediction(path, labels, scores)
        return
    chosen = decide(probs, decider.thresholds)
    for path, (labels, scores), row, p in zip(paths, ranked, chosen, probs, strict=True):
        yield Prediction(path, labels, scores, label_names(row, classes),
                         [float(v) for v in p])


@dataclass(frozen=True)
class LabelSets:
    """How a multi-label model's probabilities become label sets."""

    thresholds: np.ndarray

    @classmethod
    def of(cls, manifest: dict, threshold: float | None = None) -> LabelSets | None:
        """None for a multi-class model (a ``threshold`` is then an error)."""
        if manifest_task(manifest) != "multilabel":
            if threshold is not None:
                raise ConfigError("--threshold is for multi-label models; this model gives "
                                  "one label per image.", "Leave out --threshold.")
            return None
        return cls(thresholds_for(manifest, threshold))
