"""Build ``train/`` and ``val/`` class folders from files named ``<class>.<number>.<ext>``.

That is the layout of the Kaggle "Dogs vs. Cats" archive (``train.zip`` holds
``train/cat.0.jpg`` ... ``train/dog.12499.jpg``) and of many other dumps. Per class, the
files with the lowest numbers go to ``train/`` and the next ones to ``val/``: the split is
the same on every machine, and it is the one the classic Keras tutorial used. The source
is only read; the files are copied (each written whole, see imgcls.io).
"""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..images import IMAGE_EXTENSIONS
from ..io import atomic_write_bytes

NAME = re.compile(r"^(?P<label>[^.]+)\.(?P<number>\d+)\.(?P<ext>[A-Za-z0-9]+)$")


@dataclass
class Prepared:
    """What :func:`prepare` wrote: images per split and class, and names it skipped."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> n
    skipped: int = 0  # files whose names are not <class>.<number>.<image extension>


def _members(source: Path, stack: contextlib.ExitStack
             ) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(file name, reader) for each file of a folder (recursively) or a .zip archive, which
    stays open on ``stack`` until the readers have been used."""
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path.name, path.read_bytes
        return
    try:
        archive = stack.enter_context(zipfile.ZipFile(source))
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source} is neither a folder nor a readable .zip archive ({exc}).",
                        "Give the folder the archive unpacks to, or the train.zip itself."
                        ) from exc
    for info in archive.infolist():
        if not info.is_dir():
            yield PurePosixPath(info.filename).name, lambda info=info: archive.read(info)


def _chosen(source: Path, rename: Mapping[str, str], stack: contextlib.ExitStack
            ) -> tuple[dict[str, list[tuple[int, str, Callable[[], bytes]]]], int]:
    by_class: dict[str, list[tuple[int, str, Callable[[], bytes]]]] = defaultdict(list)
    skipped = 0
    for name, read in _members(source, stack):
        match = NAME.match(name)
        if match is None or f".{match['ext'].lower()}" not in IMAGE_EXTENSIONS:
            skipped += 1
            continue
        label = rename.get(match["label"], match["label"])
        by_class[label].append((int(match["number"]), name, read))
    return by_class, skipped


def prepare(source: str | Path, out: str | Path, train: int, val: int,
            rename: Mapping[str, str] | None = None) -> Prepared:
    """Copy the ``train`` lowest-numbered files of each class to ``out/train/<class>/`` and
    the next ``val`` to ``out/val/<class>/``."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise DataError(f"{source} does not exist.",
                        "Unpack the archive (or give its train.zip) and pass that path.")
    with contextlib.ExitStack() as stack:
        by_class, skipped = _chosen(source, rename or {}, stack)
        return _copy(source, out, train, val, by_class, skipped)


def _copy(source: Path, out: Path, train: int, val: int,
          by_class: dict[str, list[tuple[int, str, Callable[[], bytes]]]],
          skipped: int) -> Prepared:
    if not by_class:
        raise DataError(f"No file in {source} is named <class>.<number>.<extension> "
                        "(like cat.0.jpg).",
                        "imgcls data prepare reads the Kaggle archive's layout; a folder of "
                        "class sub-folders needs no preparing.")
    short = {label: len(files) for label, files in by_class.items() if len(files) < train + val}
    if short:
        found = ", ".join(f"{label} {n}" for label, n in sorted(short.items()))
        raise DataError(f"Too few images for --train {train} --val {val} per class: {found}.",
                        "Lower --train or --val.")
    result = Prepared(skipped=skipped)
    for label, files in sorted(by_class.items()):
        files.sort(key=lambda file: file[:2])  # by number (then name): cat.2 before cat.10
        for split, part in (("train", files[:train]), ("val", files[train:train + val])):
            for _, name, read in part:
                atomic_write_bytes(out / split / label / name, read())
            result.counts.setdefault(split, {})[label] = len(part)
    return result
