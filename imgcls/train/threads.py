"""How many intra-op threads training uses: what ``--threads`` asks, or the idle cores.

On a busy machine a second torch thread mostly waits for the first: on 2 cores with
another training job running, 2 threads cost about 3x the CPU per image of 1 (docs/
training.md, ``benchmarks/thread_policy.py``). So by default training counts the cores
that other processes keep busy (from /proc/stat, less this process's own CPU) and uses
the rest, at least 1; it counts again after every epoch. Linux only; elsewhere, and when
OMP_NUM_THREADS is set, torch's own thread count is kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..system import usable_cores

STAT = "/proc/stat"
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal; busy = all but idle
# and iowait.
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
FIRST_LOOK_SECONDS = 0.5  # before epoch 1 there is no epoch to measure over


def busy_cpu_seconds(path: str = STAT) -> float | None:
    """CPU-seconds the whole machine has spent busy since boot, or None off Linux."""
    try:
        with open(path, encoding="ascii") as stat:
            values = stat.readline().split()[1:]
    except OSError:
        return None
    return sum(int(values[i]) for i in BUSY_FIELDS if i < len(values)) / os.sysconf(
        "SC_CLK_TCK")


def machine_sample() -> tuple[float, float, float]:
    """The machine's busy CPU-seconds, this process's CPU-seconds, and the wall clock."""
    return busy_cpu_seconds() or 0.0, time.process_time(), time.perf_counter()


def pause(seconds: float) -> None:
    time.sleep(seconds)


def idle_threads(other_busy: float, cores: int) -> int:
    """Threads for the cores others leave: 2 cores, 0.3 busy -> 2; 1.2 busy -> 1."""
    return max(1, min(cores, round(cores - other_busy)))


@dataclass
class ThreadPolicy:
    """``requested`` threads, or ``None`` for the idle cores, counted between samples.

    Made before the data is loaded: loading is the first look at the machine (this
    process's own decoding is not counted), so training seldom waits for one."""

    requested: int | None = None
    cores: int = field(default_factory=lambda: usable_cores())
    other_busy: float | None = None  # cores other processes kept busy at the last count
    automatic: bool = field(init=False)
    _last: tuple[float, float, float] | None = None  # machine busy, own CPU, wall

    def __post_init__(self) -> None:
        self.automatic = (self.requested is None and "OMP_NUM_THREADS" not in os.environ
                          and busy_cpu_seconds() is not None)
        if self.automatic:
            self._sample()

    def start(self) -> int:
        """Set the threads for epoch 1 (when automatic, after a look of at least
        FIRST_LOOK_SECONDS since the policy was made); returns them."""
        if self.requested is not None:
            torch.set_num_threads(self.requested)
        elif self.automatic and self._last is not None:
            pause(max(0.0, FIRST_LOOK_SECONDS - (machine_sample()[2] - self._last[2])))
            self.recount()
        return torch.get_num_threads()

    def recount(self) -> int | None:
        """Count the cores others used since the last sample and set the threads to the
        rest; returns the new count when it changed, else None."""
        if not self.automatic:
            return None
        before, now = self._last, self._sample()
        if before is None or now[2] <= before[2]:
            return None
        machine, own, wall = (b - a for a, b in zip(before, now, strict=True))
        self.other_busy = max(0.0, (machine - own) / wall)
        threads = idle_threads(self.other_busy, self.cores)
        if threads == torch.get_num_threads():
            return None
        torch.set_num_threads(threads)
        return threads

    def epoch_done(self, epoch: int, note: Callable[[str], None]) -> None:
        """Count again after ``epoch``; ``note`` says so when the threads change."""
        if (threads := self.recount()) is not None:
            note(f"threads: {threads} from epoch {epoch + 1} (other processes kept "
                 f"{self.other_busy:.1f} of {self.cores} cores busy)")

    def _sample(self) -> tuple[float, float, float]:
        self._last = machine_sample()
        return self._last

    def __str__(self) -> str:
        threads = torch.get_num_threads()
        if self.requested is not None:
            return f"{threads} (--threads)"
        if not self.automatic:
            return f"{threads} (torch's default; OMP_NUM_THREADS or no /proc/stat)"
        return (f"{threads} of {self.cores} cores (other processes kept "
                f"{self.other_busy or 0:.1f} busy; counted again each epoch)")
