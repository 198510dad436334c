"""Built-in logger: appends each epoch's metrics to runs/<name>/metrics.jsonl."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imgcls import hookimpl


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one line and fsync, so a crash never leaves a half-written record."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


@hookimpl
def on_epoch_end(epoch: int, metrics: dict[str, float], run_dir: Any) -> None:
    if run_dir is not None:
        append_jsonl(Path(run_dir) / "metrics.jsonl", {"epoch": epoch, **metrics})
