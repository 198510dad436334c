"""The ``csv`` layout: a CSV or TSV file with an image path (or id) column and a label column.

Paths are relative to the CSV's folder, or to ``image_root``. An id without
an extension is resolved by trying the common image extensions. Rows whose
file is missing are counted, reported with examples in the notes, and skipped.
Splits come from a split column, a separate ``val_file``, or a sibling file
(``train.csv`` -> ``val.csv``); otherwise the caller splits off validation.
Multi-label files (``;``-separated labels, or one 0/1 column per class) are
described in :mod:`imgcls.data.csv_multilabel`.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..images import IMAGE_EXTENSIONS
from ..specs import LoadedDataset
from .csv_multilabel import (
    LabelFormat,
    class_columns,
    detect_format,
    index_label_sets,
    multilabel_classes,
)
from .folder import outside_note

PATH_NAMES = ("path", "filepath", "file_path", "image_path", "img_path", "file", "filename",
              "file_name", "image", "img", "image_name", "image_id", "img_id", "id", "fname")
LABEL_NAMES = ("label", "labels", "class", "class_name", "classname", "category", "target",
               "y", "breed", "species")
SPLIT_NAMES = ("split", "subset", "set", "partition", "fold")
TRAIN_VALUES = ("train", "training", "trn")
VAL_VALUES = ("val", "valid", "validation", "dev")
TEST_VALUES = ("test", "testing")
# Tried in this order for ids without an extension.
EXTENSION_ORDER = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm",
                   ".pgm")
EXAMPLES = 5
_SPLIT_VALUES = frozenset(TRAIN_VALUES + VAL_VALUES + TEST_VALUES)


@dataclass
class Rows:
    """Rows read from one file, resolved to files on disk."""

    found: list[tuple[Path, str, str]] = field(default_factory=list)  # path, label, split
    missing: list[str] = field(default_factory=list)
    unlabelled: int = 0


def load_csv(source: str | None, path_column: str | None = None,
             label_column: str | None = None, image_root: str | None = None,
             split_column: str | None = None, val_file: str | None = None,
             delimiter: str | None = None, outside: str = "allow", sep: str | None = None,
             task: str | None = None, classes: str | None = None) -> LoadedDataset:
    """Read labelled image paths from a CSV/TSV file (see the module docstring).

    Rows that resolve outside the image root (``../x.jpg``, an absolute path, a
    symlink) are used and noted (``outside="allow"``) or refused (``"refuse"``).
    ``sep`` separates the labels of a multi-label cell; ``task`` overrides the
    detected task; ``classes`` (comma-separated) fixes a multi-label class list.
    """
    if not source:
        raise DataError("The csv loader needs a file.", "Use --data labels.csv.")
    csv_path = Path(source).expanduser()
    if not csv_path.is_file():
        raise DataError(f"CSV file not found: {csv_path}", "Pass an existing .csv or .tsv file.")
    root = Path(image_root).expanduser() if image_root else None
    if root is not None and not root.is_dir():
        raise DataError(f"--image-root folder not found: {root}",
                        "Pass the folder the CSV's paths are relative to.")
    options = dict(path_column=path_column, label_column=label_column, image_root=root,
                   split_column=split_column, delimiter=delimiter)
    rows, notes, fmt = read_rows(csv_path, **options, sep=sep, task=task)
    options |= {"sep": fmt.sep, "task": "multilabel" if fmt.multilabel else "multiclass"}
    train, val, split_notes = _split(rows.found)
    notes += split_notes
    val_path = _val_file(csv_path, val_file) if val_file or not val else None
    if val_path is not None:
        val_rows, val_notes, _ = read_rows(val_path, **options)
        val = [(path, label) for path, label, _ in val_rows.found]
        notes += [f"validation: {val_path.name}", *val_notes]
    if not train:
        raise DataError(f"No usable rows in {csv_path}.", _no_rows_hint(rows, root))
    notes += outside_note([path for path, _ in train + (val or [])], root or csv_path.parent,
                          outside, csv_path.name)
    if fmt.multilabel:
        return _multilabel(csv_path, train, val, fmt, classes, notes)
    classes = sorted({label for _, label in train}, key=_natural)
    return LoadedDataset(classes=classes, train=_index(train, classes, csv_path),
                         val=_index(val, classes, csv_path) if val is not None else None,
                         source=str(csv_path), notes=notes)


def _multilabel(csv_path: Path, train: list[tuple[Path, str]],
                val: list[tuple[Path, str]] | None, fmt: LabelFormat, given: str | None,
                notes: list[str]) -> LoadedDataset:
    classes = multilabel_classes(train, fmt, given, csv_path.name)
    layout = "one 0/1 column per class" if fmt.class_columns else f"labels separated by " \
        f"{fmt.sep!r}"
    notes.append(f"task: multilabel ({layout})")
    return LoadedDataset(
        classes=classes, train=index_label_sets(train, classes, fmt.sep, csv_path.name),
        val=index_label_sets(val, classes, fmt.sep, csv_path.name) if val is not None else None,
        source=str(csv_path), notes=notes, task="multilabel")


def read_rows(csv_path: Path, path_column: str | None, label_column: str | None,
              image_root: Path | None, split_column: str | None, delimiter: str | None,
              sep: str | None = None, task: str | None = None
              ) -> tuple[Rows, list[str], LabelFormat]:
    """Read one file; returns the resolved rows, notes about what was skipped, and how
    its rows name their labels (multi-label rows keep an empty label: no class)."""
    header, records, delimiter = _read_table(csv_path, delimiter)
    path_key = _pick(header, path_column, "path", csv_path) if path_column \
        else _auto_path_column(header, records, csv_path)
    split_key = _pick(header, split_column, "split", csv_path) if split_column \
        else _auto_split_column(header, records, exclude={path_key})
    label_key = _pick(header, label_column, "label", csv_path) if label_column \
        else _auto_label_key(header, records, {path_key, split_key}, csv_path, task)
    fmt = detect_format(header, records, label_key, {path_key, split_key}, sep, task,
                        delimiter)
    base = image_root or csv_path.parent
    finder = _Finder()
    rows = Rows()
    for record in records:
        value = record.get(path_key, "").strip()
        label = fmt.label_of(record, label_key, f"{csv_path.name} ({value})")
        if not value or not (label or fmt.multilabel):
            rows.unlabelled += 1
            continue
        found = finder.find(base / value)
        if found is None:
            rows.missing.append(value)
        else:
            split = record.get(split_key, "").strip().lower() if split_key else ""
            rows.found.append((found, label, split))
    notes = [f"{csv_path.name}: columns path={path_key!r} label="
             f"{label_key or ','.join(fmt.class_columns)!r}"
             + (f" split={split_key!r}" if split_key else "")]
    if rows.missing:
        examples = ", ".join(rows.missing[:EXAMPLES]) + (" ..." if len(rows.missing) > EXAMPLES
                                                         else "")
        notes.append(f"{csv_path.name}: {len(rows.missing)} rows skipped, file not found "
                     f"under {base} (e.g. {examples})")
    if rows.unlabelled:
        notes.append(f"{csv_path.name}: {rows.unlabelled} rows skipped, empty path or label")
    return rows, notes, fmt


# --------------------------------------------------------------------------- reading


def _read_table(csv_path: Path, delimiter: str | None
                ) -> tuple[list[str], list[dict[str, str]], str]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read {csv_path}: {exc}",
                        "Save the file as UTF-8 text, comma or tab separated.") from exc
    delimiter = delimiter or _delimiter(csv_path, text)
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    table = [row for row in reader if any(cell.strip() for cell in row)]
    if not table:
        raise DataError(f"{csv_path} is empty.", "Add a header row such as path,label.")
    header = [cell.strip() for cell in table[0]]
    if any(Path(cell).suffix.lower() in IMAGE_EXTENSIONS for cell in header):
        raise DataError(f"{csv_path} has no header row (its first row names an image).",
                        "Add a first line naming the columns, e.g. path,label.")
    if len(set(header)) != len(header):
        raise DataError(f"{csv_path} has duplicate column names: {header}",
                        "Give every column a distinct name.")
    return header, [dict(zip(header, row, strict=False)) for row in table[1:]], delimiter


def _delimiter(csv_path: Path, text: str) -> str:
    if csv_path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def column_name(name: str) -> str:
    """A header cell as the names above are written (``"Image Path"`` -> ``image_path``)."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


_normal = column_name


def _pick(header: list[str], wanted: str, kind: str, csv_path: Path) -> str:
    by_normal = {_normal(column): column for column in header}
    if wanted in header:
        return wanted
    if _normal(wanted) in by_normal:
        return by_normal[_normal(wanted)]
    raise DataError(f"{csv_path.name} has no column {wanted!r}; its columns are {header}.",
                    f"Pass --{kind}-column with one of them.")


def _auto_path_column(header: list[str], records: list[dict[str, str]], csv_path: Path) -> str:
    by_normal = {_normal(column): column for column in header}
    for name in PATH_NAMES:
        if name in by_normal:
            return by_normal[name]
    sample = records[:50]
    scores = {column: sum(Path(r.get(column, "")).suffix.lower() in IMAGE_EXTENSIONS
                          for r in sample) for column in header}
    best = max(scores, key=scores.get) if scores else None
    if best is not None and scores[best] > len(sample) / 2:
        return best
    raise DataError(f"Cannot tell which column of {csv_path.name} holds the image paths "
                    f"(columns: {header}).", "Pass --path-column NAME.")


def _auto_split_column(header: list[str], records: list[dict[str, str]],
                       exclude: set[str | None]) -> str | None:
    for column in header:
        if column in exclude or _normal(column) not in SPLIT_NAMES:
            continue
        values = {r.get(column, "").strip().lower() for r in records}
        if values and values <= _SPLIT_VALUES:
            return column
    return None


def _auto_label_key(header: list[str], records: list[dict[str, str]],
                    exclude: set[str | None], csv_path: Path, task: str | None) -> str | None:
    """The label column, or None for a table with one 0/1 column per class."""
    named = {_normal(c) for c in header if c not in exclude} & set(LABEL_NAMES)
    if not named and class_columns(header, records, exclude):
        return None
    return _auto_label_column(header, exclude, csv_path)


def _auto_label_column(header: list[str], exclude: set[str | None], csv_path: Path) -> str:
    candidates = [column for column in header if column not in exclude]
    by_normal = {_normal(column): column for column in candidates}
    for name in LABEL_NAMES:
        if name in by_normal:
            return by_normal[name]
    if len(candidates) == 1:
        return candidates[0]
    raise DataError(f"Cannot tell which column of {csv_path.name} holds the labels "
                    f"(columns: {header}).", "Pass --label-column NAME.")


# --------------------------------------------------------------------------- resolving


class _Finder:
    """Resolves paths with one directory listing per folder instead of a stat per row."""

    def __init__(self) -> None:
        self.listings: dict[Path, frozenset[str]] = {}

    def _names(self, folder: Path) -> frozenset[str]:
        if folder not in self.listings:
            try:
                self.listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self.listings[folder] = frozenset()
        return self.listings[folder]

    def find(self, path: Path) -> Path | None:
        names = self._names(path.parent)
        if path.name in names and not (path.parent / path.name).is_dir():
            return path
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return None
        for extension in EXTENSION_ORDER:
            for candidate in (path.name + extension, path.name + extension.upper()):
                if candidate in names:
                    return path.parent / candidate
        return None


def _split(found: list[tuple[Path, str, str]]
           ) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]] | None, list[str]]:
    if not any(split for _, _, split in found):
        return [(path, label) for path, label, _ in found], None, []
    by_split: dict[str, list[tuple[Path, str]]] = {}
    for path, label, split in found:
        by_split.setdefault(_split_kind(split), []).append((path, label))
    counts = Counter(_split_kind(split) for _, _, split in found)
    notes = [f"splits from the split column: {dict(sorted(counts.items()))}"]
    val = by_split.get("val") or by_split.get("test")
    if by_split.get("val") and by_split.get("test"):
        notes.append(f"{counts['test']} test rows are not used (validation rows exist)")
    if by_split.get("other"):
        notes.append(f"{counts['other']} rows with another split value are not used")
    return by_split.get("train", []), val, notes


def _split_kind(value: str) -> str:
    for kind, values in (("train", TRAIN_VALUES), ("val", VAL_VALUES), ("test", TEST_VALUES)):
        if value in values:
            return kind
    return "other"


def _val_file(csv_path: Path, val_file: str | None) -> Path | None:
    if val_file:
        path = Path(val_file).expanduser()
        if not path.is_file() and (csv_path.parent / val_file).is_file():
            path = csv_path.parent / val_file
        if not path.is_file():
            raise DataError(f"Validation CSV not found: {val_file}",
                            "Pass an existing file with --data-opt val_file=PATH.")
        return path
    if "train" not in csv_path.stem.lower():
        return None
    for name in VAL_VALUES + TEST_VALUES:
        stem = re.sub("train(ing)?", name, csv_path.stem, count=1, flags=re.IGNORECASE)
        sibling = csv_path.with_name(stem + csv_path.suffix)
        if sibling != csv_path and sibling.is_file():
            return sibling
    return None


def _index(rows: list[tuple[Path, str]], classes: list[str], csv_path: Path
           ) -> list[tuple[Path, int]]:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for _, label in rows if label not in index}, key=_natural)
    if unknown:
        raise DataError(f"Validation labels {unknown[:5]} in {csv_path.name} do not occur in "
                        "the training rows.", "Validation classes must be a subset of the "
                        "training classes.")
    return [(path, index[label]) for path, label in rows]


def _natural(label: str) -> tuple[int, float, str]:
    """Numeric labels sort as numbers (2 before 10), others alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _no_rows_hint(rows: Rows, root: Path | None) -> str:
    if rows.missing:
        where = "--image-root" if root is None else "a different --image-root"
        return (f"None of the {len(rows.missing)} listed files exist (e.g. {rows.missing[0]!r});"
                f" paths are relative to the CSV's folder unless you pass {where}.")
    return "Every row has an empty path or label, or belongs to a validation/test split."
