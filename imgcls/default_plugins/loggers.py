"""Built-in loggers: each epoch's metrics in runs/<name>/metrics.jsonl and metrics.csv.

They implement the same training events any plugin can, so a plugin logger
(TensorBoard, a tracking server) sees exactly what these write.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from imgcls import hookimpl
from imgcls.io import append_text, atomic_write_text

JSONL = "metrics.jsonl"
CSV = "metrics.csv"


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one line and fsync, so a crash never leaves a half-written record."""
    append_text(path, json.dumps(record) + "\n")


def _csv_text(records: list[dict[str, Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


@hookimpl
def on_fit_start(run_dir: Any, history: list[dict]) -> None:
    # A resumed run may have logged an epoch whose state was never saved: start
    # the files again from the epochs the resume state knows about.
    if run_dir is None:
        return
    lines = "".join(json.dumps(record) + "\n" for record in history)
    atomic_write_text(Path(run_dir) / JSONL, lines)
    atomic_write_text(Path(run_dir) / CSV, _csv_text(history, True) if history else "")


@hookimpl
def on_epoch_end(epoch: int, metrics: dict[str, float], run_dir: Any) -> None:
    if run_dir is None:
        return
    record = {"epoch": epoch, **metrics}
    append_jsonl(Path(run_dir) / JSONL, record)
    path = Path(run_dir) / CSV
    new = not path.exists() or path.stat().st_size == 0
    append_text(path, _csv_text([record], header=new))
