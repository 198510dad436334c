"""Progress and results reporting. The library reports to a silent Reporter by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Reporter:
    """Receives training progress; subclass it to show or record progress."""

    def start(self, info: dict[str, Any]) -> None:
        """Training is about to start (run folder, device, classes, counts)."""

    def task(self, description: str, total: int) -> Callable[[int], None]:
        """A long step (e.g. decoding); returns a callback taking the number done."""
        return lambda done: None

    def epoch_start(self, epoch: int, batches: int) -> None:
        """An epoch of ``batches`` training batches begins."""

    def batch_end(self, epoch: int) -> None:
        """One training batch finished."""

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        """An epoch finished; ``record`` holds its train and val metrics."""

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop training."""

    def note(self, message: str) -> None:
        """News that is not a problem, e.g. that training stopped early."""

    def end(self, result: Any) -> None:
        """Training finished."""
