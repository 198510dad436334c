"""Multi-label CSVs: a label column of ``sep``-separated labels, or one 0/1 column per class.

The task is detected from the file: a label cell holding the separator makes it
multi-label, and so does a table whose columns other than path (and split) all
hold 0/1 values. ``task=multilabel`` or ``task=multiclass`` (``--task``) overrides.
In a multi-label file a row with no labels is an image of none of the classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..multilabel import check_task, split_labels, unknown_label

DEFAULT_SEP = ";"
_BINARY = frozenset(("0", "1", ""))


@dataclass(frozen=True)
class LabelFormat:
    """How a table's rows name their labels."""

    multilabel: bool = False
    sep: str = DEFAULT_SEP
    class_columns: tuple[str, ...] = ()  # the 0/1 layout: one column per class

    def label_of(self, record: dict[str, str], label_key: str | None, where: str) -> str:
        """A row's labels as one ``sep``-joined string (empty: no label)."""
        if not self.class_columns:
            return record.get(label_key or "", "").strip()
        values = {column: record.get(column, "").strip() for column in self.class_columns}
        bad = [column for column, value in values.items() if value not in _BINARY]
        if bad:
            raise DataError(f"{where}: column {bad[0]!r} holds {values[bad[0]]!r}, not 0 or 1.",
                            "A one-column-per-class file holds 1 for a label and 0 (or "
                            "nothing) otherwise.")
        return self.sep.join(column for column, value in values.items() if value == "1")


def class_columns(header: list[str], records: list[dict[str, str]],
                  exclude: set[str | None]) -> tuple[str, ...]:
    """The columns of a one-0/1-column-per-class table, or () when it is not one."""
    candidates = [column for column in header if column not in exclude]
    if len(candidates) < 2 or not records:
        return ()
    if all(r.get(c, "").strip() in _BINARY for r in records for c in candidates):
        return tuple(candidates)
    return ()


def detect_format(header: list[str], records: list[dict[str, str]], label_key: str | None,
                  exclude: set[str | None], sep: str | None, task: str | None,
                  delimiter: str) -> LabelFormat:
    """The label layout of a table (see the module docstring)."""
    check_task(task)
    if sep is not None and not sep.strip():
        raise DataError(f"The label separator {sep!r} is blank.",
                        "Pass a visible separator, e.g. --data-opt sep=';'.")
    if label_key is None:  # load_dataset turns one-hot rows into labels for --task multiclass
        columns = class_columns(header, records, exclude)
        return LabelFormat(bool(columns) or task == "multilabel", sep or DEFAULT_SEP, columns)
    chosen = sep or (DEFAULT_SEP if delimiter != DEFAULT_SEP else "|")
    if task == "multilabel" or (task == "multiclass" and sep is None):
        # forced multiclass without a separator: a label is the whole cell, ";" included
        return LabelFormat(task == "multilabel", chosen)
    several = any(chosen in r.get(label_key, "") for r in records)
    return LabelFormat(several, chosen)


def index_label_sets(rows: list[tuple[Path, str]], classes: list[str], sep: str,
                     csv_name: str) -> list[tuple[Path, tuple[int, ...]]]:
    """``(path, "cat;dog")`` rows -> ``(path, (0, 1))``; unknown labels are errors."""
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for path, text in rows:
        where = f"{csv_name} ({path.name})"
        names = split_labels(text, sep, where)
        for name in names:
            if name not in index:
                raise unknown_label(name, classes, where)
        samples.append((path, tuple(sorted(index[name] for name in names))))
    return samples


def multilabel_classes(rows: list[tuple[Path, str]], fmt: LabelFormat, given: str | None,
                       csv_name: str) -> list[str]:
    """The class list: ``classes=a,b,c`` as given, the 0/1 columns in order, or every
    label seen in the training rows (sorted)."""
    if given:
        names = [name.strip() for name in given.split(",")]
        if any(not name for name in names) or len(set(names)) != len(names):
            raise DataError(f"--data-opt classes={given!r} has an empty or repeated name.",
                            "List each class once, comma-separated: classes=cat,dog.")
        return names
    if fmt.class_columns:
        return list(fmt.class_columns)
    seen = {name for path, text in rows
            for name in split_labels(text, fmt.sep, f"{csv_name} ({path.name})")}
    return sorted(seen)
