"""A Parquet dataset of predictions, in part files written atomically, and the errors CSV.

``-o preds.parquet`` names a folder of ``part-<run>-<n>.parquet`` files that pandas,
pyarrow, DuckDB or Spark read as one table. Each part is written to a hidden temporary
name, synced and renamed, so a run killed at any moment leaves only complete parts;
``--resume`` reads their paths and skips them. The columns are the CSV's (path, label,
confidence, label_2, confidence_2, ...; a multi-label model's path, labels, then each
class's probability), probabilities at full precision.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from imgcls.errors import ConfigError, DecodeError
from imgcls.infer.engine import EngineStats, Failure, Prediction
from imgcls.infer.sources import PathSet
from imgcls.infer.writers import ErrorsFile, Summary, csv_header

PART_PATTERN = "part-*.parquet"
_TEMP_PATTERN = ".part-*.parquet.tmp"


def _schema(top_k: int, classes: list[str] | None = None) -> Any:
    import pyarrow as pa

    header = csv_header(top_k, classes)
    # A class may be named "label"; its probability column is prob_label, so the text
    # columns are known by position: path, then label, label_2, ... or labels alone.
    text = {0, 1} if classes is not None else {0, *range(1, len(header), 2)}
    return pa.schema([(name, pa.string() if i in text else pa.float64())
                      for i, name in enumerate(header)])


def part_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(PART_PATTERN))


def prepare(folder: Path) -> None:
    """Make the folder, and drop the temporary file of a part an earlier run left."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; --format parquet writes a folder of parts.",
                          "Name a new folder, e.g. -o preds.parquet.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot write {folder}: {exc.strerror}.",
                          "Pass a writable path with -o.") from exc
    for leftover in folder.glob(_TEMP_PATTERN):  # a part an interrupted run did not finish
        leftover.unlink()


def parquet_done(folder: Path, top_k: int, classes: list[str] | None = None) -> PathSet:
    """The paths in the folder's parts; a part that does not read back is an error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = csv_header(top_k, classes)
    paths: list[str] = []
    for part in part_files(folder):
        try:
            names = pq.read_schema(part).names
            table = pq.read_table(part, columns=["path"])
        except (pa.ArrowException, OSError) as exc:
            raise ConfigError(f"{part} is not a readable Parquet part: {exc}",
                              "Delete that file and resume again: its images are redone."
                              ) from exc
        if names != expected:
            wanted = "this model's classes" if classes is not None else f"--top-k {top_k}"
            raise ConfigError(f"{part} has columns {','.join(names)}, not those of {wanted}.",
                              "Resume with the model and --top-k of the first run.")
        paths.extend(table.column("path").to_pylist())
    return PathSet(paths)


class PartWriter:
    """Collects predictions and writes every ``part_rows`` of them as one atomic part."""

    def __init__(self, folder: Path, top_k: int, part_rows: int,
                 classes: list[str] | None = None) -> None:
        self.folder, self.part_rows, self.multilabel = folder, part_rows, classes is not None
        self.schema = _schema(top_k, classes)
        self.run = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.parts = 0
        self._rows: list[list[Any]] = []

    def add(self, prediction: Prediction) -> None:
        row: list[Any] = [prediction.path]
        if self.multilabel:
            row += [";".join(prediction.label_set or ()), *(prediction.class_probs or ())]
        else:
            for label, score in zip(prediction.labels, prediction.scores, strict=True):
                row += [label, score]
        self._rows.append(row)
        if len(self._rows) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*self._rows, strict=True))
        table = pa.table(dict(zip(self.schema.names, columns, strict=True)), schema=self.schema)
        name = f"part-{self.run}-{self.parts:05d}.parquet"
        temp = self.folder / f".{name}.tmp"
        pq.write_table(table, temp)
        _sync(temp)
        os.replace(temp, self.folder / name)
        _sync(self.folder)
        self.parts += 1
        self._rows = []


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_parquet(results: Iterable[Prediction | Failure], folder: Path, top_k: int, *,
                  part_rows: int, append: bool, errors_path: Path | None, strict: bool,
                  stats: EngineStats, keep: int = 20,
                  classes: list[str] | None = None) -> Summary:
    """Stream ``results`` into parts under ``folder`` and failures into ``errors_path``.

    Without ``append`` the folder's earlier parts are removed first, as ``imgcls
    infer`` overwrites its output file.
    """
    if not append:
        for part in part_files(folder):
            part.unlink()
    summary = Summary(errors_path=errors_path)
    parts = PartWriter(folder, top_k, part_rows, classes)
    errors = ErrorsFile(errors_path)
    try:
        for result in results:
            if isinstance(result, Prediction):
                summary.images += 1
                parts.add(result)
                continue
            summary.failed += 1
            if len(summary.failures) < keep:
                summary.failures.append(result)
            errors.add(result)
            if strict:
                parts.flush()
                raise DecodeError(f"{result.reason} (--strict stops at the first unreadable "
                                  "image).", "Fix or remove the file, or drop --strict to list "
                                  "unreadable images in the errors file; --resume continues.")
        parts.flush()
    finally:
        errors.close()
    summary.seconds, summary.batches = stats.seconds, stats.batches
    summary.p50_ms, summary.p95_ms = stats.latency_ms(50), stats.latency_ms(95)
    return summary
