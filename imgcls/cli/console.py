"""Shared CLI output: rich consoles, the training progress reporter, option parsing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..augment import parse_value
from ..errors import ConfigError
from ..reporting import Reporter

# Piped output is read by programs and people alike: never truncate it to 80 columns.
_WIDTH = None if sys.stdout.isatty() else 200
console = Console(soft_wrap=True, width=_WIDTH)
err_console = Console(stderr=True, soft_wrap=True, width=_WIDTH)


def parse_options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``["width=2", "dropout=0.1"]`` -> {"width": 2, "dropout": 0.1}."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects key=value, got {pair!r}.",
                              f"For example: {flag} width=2.")
        options[key.strip().replace("-", "_")] = parse_value(value)
    return options


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, transient=True)


class ConsoleReporter(Reporter):
    """Progress bars on stderr, one line per epoch on stdout."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task_id: Any = None

    def start(self, info: dict[str, Any]) -> None:
        classes = info["classes"]
        shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
        console.print(f"model {info['model']} ({info['params']:,} parameters) on {info['device']}")
        console.print(f"data: {info['train']} train / {info['val']} val images, "
                      f"{len(classes)} classes: {shown}")
        for note in info.get("notes", []):
            console.print(f"  {note}")
        console.print(f"run folder: {info['run_dir']}")

    def task(self, description: str, total: int) -> Callable[[int], None]:
        progress = _progress()
        progress.start()
        task_id = progress.add_task(description, total=total)

        def update(done: int) -> None:
            progress.update(task_id, completed=done)
            if done >= total:
                progress.stop()

        if total == 0:
            progress.stop()
        return update

    def epoch_start(self, epoch: int, batches: int) -> None:
        self.progress = _progress()
        self.progress.start()
        self.task_id = self.progress.add_task(f"epoch {epoch}", total=batches)

    def batch_end(self, epoch: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task_id)

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        mark = "  *best" if is_best else ""
        console.print(
            f"epoch {int(record['epoch']):>3}  train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.2%}  val loss {record['val_loss']:.4f} "
            f"acc {record['val_acc']:.2%}  {record['images_per_second']:.0f} img/s{mark}",
            highlight=False)

    def warn(self, message: str) -> None:
        err_console.print(f"[yellow]Warning:[/yellow] {message}", highlight=False)

    def end(self, result: Any) -> None:
        best = result.best
        console.print(f"best val accuracy {best['val_acc']:.2%} at epoch {int(best['epoch'])}; "
                      f"checkpoint: {result.best_path}", highlight=False)
