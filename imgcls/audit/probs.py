"""Reading and writing predicted probabilities for ``imgcls data audit --probs``.

Two layouts are read, both CSV:

- what ``imgcls infer -o preds.csv`` writes: ``path,label,confidence,label_2,
  confidence_2,...``. It holds the top k classes per image; the audit needs every
  class, so it must have been written with ``--top-k`` at least the number of classes;
- one column per class: ``path,<class 1>,<class 2>,...`` (what the audit itself
  writes as ``pred_probs.csv``, and what most other tools can produce).

Everything is checked before any of it is used: the path column, that every
class of the data has a probability and no other class does, numbers that are
finite and in [0, 1], rows that sum to 1, and no path given twice.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..infer.writers import safe_row, spreadsheet_value

INFER_HEADER = ["path", "label", "confidence"]
ML_INFER_HEADER = ["path", "labels"]  # then prob_<class> per class (a multi-label model)
ML_PREFIX = "prob_"
# imgcls infer writes six decimals: a row of 1,000 classes may be off by 5e-4.
SUM_TOLERANCE = 1e-3


def infer_hint(path: Path, classes: list[str]) -> str:
    return (f"Write every class's probability: imgcls infer MODEL IMAGES --top-k "
            f"{len(classes)} -o {path.name} (for a multi-label model, without --top-k), or a "
            "CSV with columns path,"
            + ",".join(classes[:3]) + (",..." if len(classes) > 3 else "") + ".")


def read_probs(path: str | os.PathLike, classes: list[str], multilabel: bool = False
               ) -> dict[str, np.ndarray]:
    """Real path of each image -> its probabilities, in the order of ``classes``;
    ``multilabel``: one sigmoid per class, rows need not sum to 1."""
    path = Path(path)
    rows = _table(path, classes)
    header, body = rows[0], rows[1:]
    if multilabel and [spreadsheet_value(cell) for cell in header[:2]] == ML_INFER_HEADER:
        columns = _ml_infer_columns(path, header, classes)
        parse = _wide_row
    elif [spreadsheet_value(cell) for cell in header[:3]] == INFER_HEADER:
        if multilabel:
            raise DataError(f"{path} ranks the labels of a one-label model; a multi-label "
                            "audit needs each class's sigmoid probability.",
                            infer_hint(path, classes))
        columns = _infer_columns(path, header, classes)
        parse = _infer_row
    else:
        columns = _wide_columns(path, header, classes)
        parse = _wide_row
    found: dict[str, np.ndarray] = {}
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {number} has {len(row)} cells, not {len(header)}.",
                            "Every row needs a value under every column of the header.")
        image = spreadsheet_value(row[0])
        values = parse(path, number, row, columns, classes)
        _check_row(path, number, image, values, classes, multilabel)
        key = os.path.realpath(image)
        if key in found:
            raise DataError(f"{path} line {number}: {image} has probabilities twice.",
                            "List each image once.")
        found[key] = values
    return found


def _table(path: Path, classes: list[str]) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read the probabilities file {path}: {exc}",
                        infer_hint(path, classes)) from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise DataError(f"The probabilities file {path} has no rows.", infer_hint(path, classes))
    if spreadsheet_value(rows[0][0]).strip().lower() != "path":
        raise DataError(f"{path} does not start with a path column (its header is "
                        f"{','.join(rows[0][:6])}).", infer_hint(path, classes))
    return rows


def _infer_columns(path: Path, header: list[str], classes: list[str]) -> list[int]:
    top_k = (len(header) - 1) // 2
    if top_k < len(classes):
        raise DataError(f"{path} holds the top {top_k} of the {len(classes)} classes per "
                        "image; the audit needs the probability of every class.",
                        infer_hint(path, classes))
    return list(range(1, 1 + 2 * top_k, 2))


def _infer_row(path: Path, number: int, row: list[str], columns: list[int],
               classes: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    values = np.full(len(classes), np.nan)
    for column in columns:
        label = spreadsheet_value(row[column])
        if label not in index:
            raise DataError(f"{path} line {number}: class {label!r} is not a class of the "
                            f"data ({', '.join(classes)}).",
                            "Audit with the data the model was trained on (same class names).")
        values[index[label]] = _number(path, number, row[column + 1])
    return values


def _ml_infer_columns(path: Path, header: list[str], classes: list[str]) -> list[int]:
    # imgcls infer of a multi-label model: path,labels,prob_<class>...
    return _wide_columns(path, header, classes, first=2, prefix=ML_PREFIX)


def _wide_columns(path: Path, header: list[str], classes: list[str], first: int = 1,
                  prefix: str = "") -> list[int]:
    names = [spreadsheet_value(cell).removeprefix(prefix) for cell in header[first:]]
    missing = [name for name in classes if name not in names]
    extra = [name for name in names if name not in classes]
    problems = [f"no column for {', '.join(map(repr, missing[:5]))}"] if missing else []
    if extra:
        problems.append(f"columns {', '.join(map(repr, extra[:5]))} are not classes of the data")
    if len(set(names)) != len(names):
        problems.append("a class column appears twice")
    if problems:
        raise DataError(f"{path}: {'; '.join(problems)} (the data's classes: "
                        f"{', '.join(classes)}).", infer_hint(path, classes))
    return [first + names.index(name) for name in classes]


def _wide_row(path: Path, number: int, row: list[str], columns: list[int],
              classes: list[str]) -> np.ndarray:
    return np.array([_number(path, number, row[column]) for column in columns])


def _number(path: Path, number: int, cell: str) -> float:
    try:
        value = float(spreadsheet_value(cell))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not -SUM_TOLERANCE <= value <= 1 + SUM_TOLERANCE:
        raise DataError(f"{path} line {number}: {cell!r} is not a probability.",
                        "Probabilities are numbers from 0 to 1.")
    return value


def _check_row(path: Path, number: int, image: str, values: np.ndarray,
               classes: list[str], multilabel: bool = False) -> None:
    if not image.strip():
        raise DataError(f"{path} line {number} has an empty path.", "Name an image on every row.")
    if np.isnan(values).any():
        missing = [classes[i] for i in np.flatnonzero(np.isnan(values))]
        raise DataError(f"{path} line {number}: no probability for {', '.join(missing[:5])}.",
                        infer_hint(path, classes))
    total = float(values.sum())
    if not multilabel and abs(total - 1.0) > SUM_TOLERANCE:
        raise DataError(f"{path} line {number} ({image}): the probabilities sum to {total:.4g}, "
                        "not 1.", "Write softmax probabilities of every class, not logits or "
                        "a subset of the classes.")


def probs_csv(paths: list[Path], probs: np.ndarray, classes: list[str]) -> bytes:
    """``path,<class>...`` with one row per image: the layout :func:`read_probs` reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(safe_row(["path", *classes]))
    for path, row in zip(paths, probs, strict=True):
        writer.writerow(safe_row([str(path), *(f"{value:.6f}" for value in row)]))
    return buffer.getvalue().encode("utf-8", "surrogateescape")
