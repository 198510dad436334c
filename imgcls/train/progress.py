"""Progress and results reporting.

``fit()`` prints one line per epoch (:class:`EpochPrinter`) unless ``verbose=False``; the
CLI passes its own reporter (progress bars too), tune and audit theirs.
"""

from __future__ import annotations

import sys
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


def epoch_line(record: dict[str, float], is_best: bool) -> str:
    """One epoch's line, as ``imgcls train`` and ``fit()`` print it."""
    mark = "  *best" if is_best else ""
    f1 = f" mAP {record['val_map']:.3f}" if "val_map" in record else ""  # multi-label
    f1 += f" F1 {record['val_macro_f1']:.3f}" if "val_macro_f1" in record else ""
    f1 += "".join(f" {key[4:]} {value:.2%}" for key, value in record.items()
                  if key.startswith("val_top"))  # --top-k, where k is below the classes
    lr = f"  lr {record['lr']:.2e}" if "lr" in record else ""
    speed = (f"  {record['images_per_second']:.0f} img/s" if "images_per_second" in record
             else "")
    return (f"epoch {int(record['epoch']):>3}  train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.2%}  val loss {record['val_loss']:.4f} "
            f"acc {record['val_acc']:.2%}{f1}{lr}{speed}{mark}")


def best_line(result: Any) -> str:
    """The run's last line: its best epoch (a multi-label run's by mAP and exact match)."""
    best = result.best
    found = (f"best val mAP {best['val_map']:.3f} (exact match {best['val_acc']:.2%})"
             if "val_map" in best else f"best val accuracy {best['val_acc']:.2%}")
    return f"{found} at epoch {int(best['epoch'])}; checkpoint: {result.best_path}"


class EpochPrinter(Reporter):
    """What ``fit()`` shows by default, as Keras does: the run folder, one line per epoch,
    warnings and notes, the best epoch. Plain ``print``, so notebooks and logs show it."""

    def start(self, info: dict[str, Any]) -> None:
        print(f"run folder: {info['run_dir']}", flush=True)
        if info.get("run_note"):
            self.warn(info["run_note"])

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        print(epoch_line(record, is_best), flush=True)

    def warn(self, message: str) -> None:
        print(f"Warning: {message}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        print(message, flush=True)

    def end(self, result: Any) -> None:
        print(best_line(result), flush=True)
