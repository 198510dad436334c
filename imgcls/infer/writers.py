"""Writing predictions as CSV or JSONL, streamed: results are never all held in memory.

Unreadable files go to an errors CSV as they are met. ``--resume`` reads the
paths already in an output file and appends to it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError, DecodeError
from .engine import EngineStats, Failure, Prediction
from .sources import PathSet

FORMATS = ("csv", "jsonl")
ERRORS_HEADER = ["path", "error"]
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV
# injection"); a leading ' makes it text. A cell that already starts with ' gets
# one more, so that reading back (spreadsheet_value) is exact.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

LABEL_SEP = ";"  # joins a multi-label prediction's labels in the labels column


def spreadsheet_safe(cell: object) -> object:
    """``cell`` with a ``'`` in front when a spreadsheet would read it as a formula.

    Plain numbers such as ``-1`` (a common label) are left alone: they are no
    formula. Non-strings pass through.
    """
    if isinstance(cell, str) and cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def spreadsheet_value(cell: str) -> str:
    """The inverse of :func:`spreadsheet_safe`, for reading back a CSV that imgcls wrote."""
    return cell[1:] if cell.startswith("'") else cell


def safe_row(cells: Iterable[object]) -> list[object]:
    return [spreadsheet_safe(cell) for cell in cells]


def csv_header(top_k: int, classes: list[str] | None = None) -> list[str]:
    """The columns for ``top_k`` ranked labels; with ``classes`` (a multi-label model),
    ``labels`` (the ``;``-joined label set) and one ``prob_<class>`` column per class."""
    if classes is not None:
        return ["path", "labels", *(f"prob_{name}" for name in classes)]
    header = ["path", "label", "confidence"]
    for rank in range(2, top_k + 1):
        header += [f"label_{rank}", f"confidence_{rank}"]
    return header


def csv_row(prediction: Prediction) -> list[str]:
    if prediction.label_set is not None:
        row = [prediction.path, LABEL_SEP.join(prediction.label_set),
               *(f"{p:.6f}" for p in prediction.class_probs or [])]
        return [str(cell) for cell in safe_row(row)]
    row = [prediction.path]
    for label, score in zip(prediction.labels, prediction.scores, strict=True):
        row += [label, f"{score:.6f}"]
    return [str(cell) for cell in safe_row(row)]


def jsonl_record(prediction: Prediction, classes: list[str] | None = None) -> str:
    if prediction.label_set is not None and classes is not None:
        return json.dumps({"path": prediction.path, "labels": list(prediction.label_set),
                           "probabilities": {name: round(p, 6) for name, p in zip(
                               classes, prediction.class_probs or [], strict=True)}},
                          ensure_ascii=False)
    return json.dumps({
        "path": prediction.path, "label": prediction.label,
        "confidence": round(prediction.confidence, 6),
        "top_k": [{"label": label, "confidence": round(score, 6)}
                  for label, score in zip(prediction.labels, prediction.scores, strict=True)],
    }, ensure_ascii=False)


def errors_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".errors.csv")


@dataclass
class Summary:
    images: int = 0
    failed: int = 0
    seconds: float = 0.0
    skipped: int = 0
    batches: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    provider: str = ""
    errors_path: Path | None = None
    failures: list[Failure] = field(default_factory=list)  # the first few, for display

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def summary_dict(summary: Summary) -> dict[str, Any]:
    return {"images": summary.images, "failed": summary.failed, "skipped": summary.skipped,
            "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 1),
            "batches": summary.batches, "batch_latency_ms": {
                "p50": round(summary.p50_ms, 3), "p95": round(summary.p95_ms, 3)},
            "provider": summary.provider,
            "errors_file": str(summary.errors_path) if summary.errors_path else None}


# --------------------------------------------------------------------------- resume


def _drop_partial_line(path: Path) -> None:
    """A run killed mid-write leaves half a line; cut it so the next append is clean."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        step, end = 4096, size
        while end > 0:
            start = max(0, end - step)
            handle.seek(start)
            cut = handle.read(end - start).rfind(b"\n")
            if cut >= 0:
                handle.truncate(start + cut + 1)
                return
            end = start
        handle.truncate(0)


def _complete_csv_end(path: Path) -> int:
    """Where the last complete CSV record of ``path`` ends, in bytes.

    A quoted path may hold a newline, so a cut inside it still ends in a newline;
    the csv module (strict) tells a finished record from an unterminated quote.
    """
    read = [0, False]  # bytes read so far; whether the last line read was whole
    complete = 0

    def lines() -> Iterator[str]:
        with open(path, "rb") as handle:
            for raw in handle:
                read[0] += len(raw)
                read[1] = raw.endswith(b"\n")
                yield raw.decode("utf-8", "surrogateescape")

    try:
        for _ in csv.reader(lines(), strict=True):
            # The reader pulls a record's lines and no more: a record whose last
            # line has its terminator was written whole.
            if read[1]:
                complete = int(read[0])
    except csv.Error:  # an unterminated quote at the end: a record cut mid-write
        pass
    return complete


def _drop_partial_record(path: Path, fmt: str) -> None:
    if fmt != "csv":
        _drop_partial_line(path)
        return
    end = _complete_csv_end(path)
    if end < path.stat().st_size:
        with open(path, "rb+") as handle:
            handle.truncate(end)


def _written_paths(path: Path, fmt: str, top_k: int,
                   classes: list[str] | None = None) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        if fmt == "csv":
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is not None and header != csv_header(top_k, classes):
                raise ConfigError(
                    f"{path} has columns {','.join(header)}, not those of --top-k {top_k}.",
                    "Resume with the --top-k and --format of the first run.")
            yield from (spreadsheet_value(row[0]) for row in rows if row)
            return
        for number, line in enumerate(handle, 1):
            try:
                yield json.loads(line)["path"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path} line {number} is not an imgcls JSONL record.",
                                  "Resume with the --format of the first run.") from exc


def paths_done(output: Path, fmt: str, top_k: int, classes: list[str] | None = None
               ) -> PathSet:
    """The paths already in ``output`` (empty when it does not exist yet)."""
    if not output.is_file():
        return PathSet()
    _drop_partial_record(output, fmt)
    return PathSet(_written_paths(output, fmt, top_k, classes))


# --------------------------------------------------------------------------- writing


def _open(output: Path, append: bool) -> IO[str]:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        # File names that are not UTF-8 are written back as the bytes they are.
        return open(output, "a" if append else "w", encoding="utf-8", errors="surrogateescape",
                    newline="")
    except OSError as exc:
        raise ConfigError(f"Cannot write {output}: {exc.strerror}.",
                          "Pass a writable path with -o.") from exc


class ErrorsFile:
    """The errors CSV, created at the first failure so clean runs leave none behind."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self._writer: Any = None
        if path is not None:
            path.unlink(missing_ok=True)  # a stale list from an earlier run would mislead

    def add(self, failure: Failure) -> None:
        if self.path is None:
            return
        if self._handle is None:
            self._handle = _open(self.path, append=False)
            self._writer = csv.writer(self._handle)
            self._writer.writerow(ERRORS_HEADER)
        self._writer.writerow(safe_row([failure.path, failure.reason]))
        self._handle.flush()  # failures are few: each is on disk as soon as it is known

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def write_predictions(
    results: Iterable[Prediction | Failure],
    output: Path | None,
    fmt: str,
    top_k: int,
    max_failures_kept: int = 20,
    *,
    append: bool = False,
    errors_path: Path | None = None,
    strict: bool = False,
    stats: EngineStats | None = None,
    classes: list[str] | None = None,
) -> Summary:
    """Stream results to ``output`` (stdout if None) and failures to ``errors_path``.

    ``classes`` (a multi-label model's) selects the label-set columns of :func:`csv_header`.

    ``append`` continues an existing file (no second header). ``strict`` raises
    DecodeError at the first failure in ``results``, after every prediction before
    it in ``results`` is written and flushed. The engine yields a failure before
    the images ahead of it in its batch, so run_inference reorders the stream
    first (batch._Stream) to make that the input order.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown output format {fmt!r}.", "Use --format csv or jsonl.")
    stats = stats if stats is not None else EngineStats()
    summary = Summary(errors_path=errors_path)
    appending = append and output is not None and output.is_file() and output.stat().st_size > 0
    handle = _stdout() if output is None else _open(output, appending)
    errors = ErrorsFile(errors_path)
    try:
        writer = csv.writer(handle) if fmt == "csv" else None
        if writer and not appending:
            writer.writerow(csv_header(top_k, classes))
        for result in results:
            if isinstance(result, Failure):
                _record_failure(result, summary, errors, max_failures_kept, strict)
                continue
            summary.images += 1
            if writer:
                writer.writerow(csv_row(result))
            else:
                handle.write(jsonl_record(result, classes) + "\n")
    finally:
        errors.close()
        _finish(handle)
    _fill_timings(summary, stats)
    return summary


def _record_failure(failure: Failure, summary: Summary, errors: ErrorsFile, keep: int,
                    strict: bool) -> None:
    summary.failed += 1
    if len(summary.failures) < keep:
        summary.failures.append(failure)
    errors.add(failure)
    if strict:
        raise DecodeError(f"{failure.reason} (--strict stops at the first unreadable image).",
                          "Fix or remove the file, or drop --strict to list unreadable images "
                          "in the errors file; --resume continues after the images written.")


def _stdout() -> IO[str]:
    # A file name that is not UTF-8 goes out as its own bytes, as ls prints it.
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
    return sys.stdout


def _finish(handle: IO[str]) -> None:
    handle.flush()
    if handle is not sys.stdout:
        os.fsync(handle.fileno())
        handle.close()


def _fill_timings(summary: Summary, stats: EngineStats) -> None:
    summary.seconds = stats.seconds
    summary.batches = stats.batches
    summary.p50_ms = stats.latency_ms(50)
    summary.p95_ms = stats.latency_ms(95)

