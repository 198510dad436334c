"""Shared CLI output: rich consoles, the training progress reporter, option parsing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from ..errors import ConfigError
from ..options import check_finite_option, parse_value
from ..train.progress import Reporter, best_line, epoch_line

# Piped output is read by programs and people alike: never truncate it to 80 columns.
_WIDTH = None if sys.stdout.isatty() else 200
console = Console(soft_wrap=True, width=_WIDTH)
err_console = Console(stderr=True, soft_wrap=True, width=_WIDTH)


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a file name (surrogate escapes) as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def print_warning(message: str) -> None:
    """One ``Warning: ...`` line on stderr; ``message`` is printed as text, not markup."""
    err_console.print(f"[yellow]Warning:[/yellow] {escape(printable(message))}", highlight=False)


def parse_options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``["width=2", "dropout=0.1"]`` -> {"width": 2, "dropout": 0.1}."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects key=value, got {pair!r}.",
                              f"For example: {flag} width=2.")
        name = key.strip().replace("-", "_")
        options[name] = parse_value(value)
        check_finite_option(flag, name, options[name])
    return options


def _progress() -> Progress:
    # Descriptions may name files or classes: text, never markup. A bar that cannot be
    # redrawn in place (a log file, a pipe) would leave a blank line per epoch: none then.
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                    transient=True, disable=not err_console.is_terminal)


class ConsoleReporter(Reporter):
    """Progress bars on stderr, one line per epoch on stdout."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task_id: Any = None

    def start(self, info: dict[str, Any]) -> None:
        classes = info["classes"]
        where = f"{info['device']}" + (f" x {info['world_size']} processes"
                                       if info.get("world_size", 1) > 1 else "")
        console.print(escape(f"model {info['model']} ({info['params']:,} parameters) on "
                             f"{where}, {info.get('precision', 'fp32')}"), highlight=False)
        if info.get("threads"):
            console.print(escape(f"threads: {info['threads']}"), highlight=False)
        console.print(f"data: {info['train']} train / {info['val']} val images, "
                      f"{len(classes)} classes")
        for note in info.get("notes", []):
            console.print(escape(f"  {note}"), highlight=False)
        if "class_counts" in info:
            print_class_histogram(classes, info["class_counts"], info.get("balanced", False))
        if info.get("recipe"):
            console.print(escape(info["recipe"]), highlight=False)
        console.print(escape(f"run folder: {info['run_dir']}"), highlight=False)
        if info.get("run_note"):
            print_warning(info["run_note"])
        if info.get("start_epoch", 1) > 1:
            console.print(f"resuming at epoch {info['start_epoch']} of {info['epochs']}")

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
        console.print(epoch_line(record, is_best), highlight=False)

    def note(self, message: str) -> None:
        console.print(escape(message), highlight=False)

    def warn(self, message: str) -> None:
        print_warning(message)

    def end(self, result: Any) -> None:
        console.print(escape(best_line(result)), highlight=False)
        if getattr(result, "report_path", None):
            console.print(escape(f"report: {result.report_path}"), highlight=False)


IMBALANCE_RATIO = 3.0


def print_class_histogram(classes: list[str], counts: dict[str, list[int]],
                          balanced: bool, width: int = 30) -> None:
    """Images per class as bars, so an imbalance is visible before training starts."""
    train = counts["train"]
    val = counts.get("val", [0] * len(train))
    top = max(train) or 1
    shown = sorted(range(len(classes)), key=lambda i: -train[i])
    name_width = min(24, max(len(c) for c in classes))
    console.print("class histogram (train / val):")
    for i in shown[:20]:
        bar = "#" * max(1, round(width * train[i] / top)) if train[i] else ""
        # Class names are folder names: text, never markup.
        console.print(f"  {classes[i][:name_width]:<{name_width}} {bar:<{width}} "
                      f"{train[i]:>6} / {val[i]}", highlight=False, markup=False)
    if len(classes) > 20:
        console.print(f"  ... {len(classes) - 20} more classes")
    smallest = min(train)
    if not balanced and smallest and top / smallest >= IMBALANCE_RATIO:
        print_warning(f"classes are imbalanced ({top / smallest:.1f}:1); consider "
                      "--class-weights auto or --sampler balanced.")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images``: numbers of things, in plain English."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def say(text: str) -> None:
    """One line of plain output: file and class names are never read as markup."""
    console.print(text, highlight=False, markup=False)


def progress(label: str) -> Callable[[int, int], None]:
    """An ``on_progress(done, total)`` callback whose bar appears once the total is known."""
    update: list[Callable[[int], None]] = []

    def on_progress(done: int, total: int) -> None:
        if not update:
            update.append(ConsoleReporter().task(label, total))
        update[0](done)

    return on_progress


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                title: str | None = None, right: Sequence[str] = ()) -> None:
    """One table for every listing; cells are plain text, never rich markup (they hold
    file, class and plugin names), and the ``right`` columns are numbers."""
    table = Table(*(Column(name, justify="right" if name in right else "left")
                    for name in columns), title=title)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    console.print(table)
