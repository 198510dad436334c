"""Writing predictions as CSV or JSONL, streamed: results are never all held in memory."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError
from .infer import Failure, Prediction

FORMATS = ("csv", "jsonl")


def csv_header(top_k: int) -> list[str]:
    header = ["path", "label", "confidence"]
    for rank in range(2, top_k + 1):
        header += [f"label_{rank}", f"confidence_{rank}"]
    return header


def csv_row(prediction: Prediction) -> list[str]:
    row = [prediction.path]
    for label, score in zip(prediction.labels, prediction.scores, strict=True):
        row += [label, f"{score:.6f}"]
    return row


def jsonl_record(prediction: Prediction) -> str:
    return json.dumps({
        "path": prediction.path, "label": prediction.label,
        "confidence": round(prediction.confidence, 6),
        "top_k": [{"label": label, "confidence": round(score, 6)}
                  for label, score in zip(prediction.labels, prediction.scores, strict=True)],
    }, ensure_ascii=False)


@dataclass
class Summary:
    images: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _open(output: Path | None) -> IO[str]:
    if output is None:
        return sys.stdout
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        return open(output, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"Cannot write {output}: {exc.strerror}.",
                          "Pass a writable path with -o.") from exc


def write_predictions(
    results: Iterable[Prediction | Failure],
    output: Path | None,
    fmt: str,
    top_k: int,
    max_failures_kept: int = 1000,
) -> Summary:
    """Stream results to ``output`` (stdout if None); failures are counted and sampled."""
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown output format {fmt!r}.", "Use --format csv or jsonl.")
    summary = Summary()
    started = time.perf_counter()
    handle = _open(output)
    try:
        writer = csv.writer(handle) if fmt == "csv" else None
        if writer:
            writer.writerow(csv_header(top_k))
        for result in results:
            if isinstance(result, Failure):
                summary.failed += 1
                if len(summary.failures) < max_failures_kept:
                    summary.failures.append(result)
                continue
            summary.images += 1
            if writer:
                writer.writerow(csv_row(result))
            else:
                handle.write(jsonl_record(result) + "\n")
        handle.flush()
        if handle is not sys.stdout:
            os.fsync(handle.fileno())
    finally:
        if handle is not sys.stdout:
            handle.close()
    summary.seconds = time.perf_counter() - started
    return summary


def write_failures(failures: list[Failure], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "error"])
        writer.writerows([failure.path, failure.reason] for failure in failures)


def summary_dict(summary: Summary) -> dict[str, Any]:
    return {"images": summary.images, "failed": summary.failed,
            "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 1)}
