"""Move bad files out of a data set into a quarantine folder, with a manifest; never delete."""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import DataError

MANIFEST = "manifest.csv"
COLUMNS = ("original", "quarantined", "reason", "moved_at")


@dataclass(frozen=True)
class Moved:
    original: Path
    quarantined: Path
    reason: str


def quarantine(files: list[tuple[Path, str]], folder: Path, root: Path | None = None
               ) -> list[Moved]:
    """Move each (path, reason) under ``folder``, keeping its path relative to ``root``.

    Every move is appended to ``folder/manifest.csv`` as soon as it is done, so
    an interrupted run still says where each file went. Names never collide:
    a file already in quarantine gets a ``-2``, ``-3`` ... suffix.
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create quarantine folder {folder}: {exc.strerror}",
                        "Pass a writable --quarantine folder.") from exc
    moved: list[Moved] = []
    for path, reason in files:
        target = _free_name(folder / _relative(Path(path), root))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(os.fspath(path), os.fspath(target))
        except OSError as exc:
            raise DataError(f"Cannot move {path} into quarantine: {exc.strerror or exc}",
                            f"{len(moved)} files were moved before this one; see "
                            f"{folder / MANIFEST}.") from exc
        moved.append(Moved(Path(path), target, reason))
        _append(folder / MANIFEST, moved[-1])
    return moved


def _relative(path: Path, root: Path | None) -> Path:
    absolute = path.resolve()
    if root is not None:
        try:
            return absolute.relative_to(Path(root).resolve())
        except ValueError:
            pass
    return Path(*absolute.parts[1:])  # outside the data root: keep its whole path


def _free_name(target: Path) -> Path:
    candidate, n = target, 1
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate


def _append(manifest: Path, item: Moved) -> None:
    new = not manifest.exists()
    with open(manifest, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(COLUMNS)
        writer.writerow([str(item.original.resolve()), str(item.quarantined.resolve()),
                         item.reason,
                         datetime.now(timezone.utc).isoformat(timespec="seconds")])


def quarantine_root(source: str, loader: str, folder: Path) -> Path:
    """The data root that quarantined paths are kept relative to; refuses a folder inside
    a folder data set, where the quarantined images would be loaded as a class."""
    source_path = Path(source).expanduser().resolve()
    root = source_path if source_path.is_dir() else source_path.parent
    target = Path(folder).expanduser().resolve()
    if loader != "csv" and (target == root or root in target.parents):
        raise DataError(f"The quarantine folder {folder} is inside the data folder {root}; "
                        "its images would be loaded as a class.",
                        "Pass a folder outside the data, e.g. --quarantine ../quarantine.")
    return root
