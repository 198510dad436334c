"""Where an epoch's time goes: wall seconds per stage of the training step.

The loop wraps each stage in ``clock(stage)``; the totals go out with every
epoch's timing (``<stage>_seconds``), so `imgcls train`, plugins and
benchmarks/train_throughput.py all read the same split. On CUDA the clock
does not synchronise (that would stall the queue it measures): kernels are
asynchronous, so device time shows up in whichever stage next waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# data: waiting for the loader; augment: moving the uint8 batches to the device and
# augmenting them there, several batches per call (feed.py); normalise: uint8 -> float
# input, and batch-level mixing; step: forward, loss, backward, optimiser;
# bookkeeping: running totals, progress.
STAGES = ("data", "augment", "normalise", "step", "bookkeeping")


class StageClock:
    """Accumulates wall seconds per stage."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def as_timing(self) -> dict[str, float]:
        """``{"data_seconds": ..., ...}``, the keys of an epoch's timing."""
        return {f"{stage}_seconds": value for stage, value in self.seconds.items()}
