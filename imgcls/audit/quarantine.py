"""Move bad files out of a data set into a quarantine folder, with a manifest; never delete."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..data.folder import is_under
from ..errors import DataError
from ..infer.writers import safe_row
from ..io import append_text

MANIFEST = "manifest.csv"
COLUMNS = ("original", "quarantined", "reason", "moved_at")


@dataclass(frozen=True)
class Moved:
    original: Path
    quarantined: Path
    reason: str


def split_by_root(files: list[tuple[Path, str]], root: Path
                  ) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """``files`` as (under the data root, outside it); symlinks count where they point."""
    inside = [item for item in files if is_under(item[0], root)]
    outside = [item for item in files if not is_under(item[0], root)]
    return inside, outside


def quarantine(files: list[tuple[Path, str]], folder: Path, root: Path) -> list[Moved]:
    """Move each (path, reason) under ``folder``, keeping its path relative to ``root``.

    Only files under ``root`` are ever moved: if any listed file resolves outside
    it (a CSV row ``../x.jpg``, a symlink), nothing is moved and DataError says
    which; :func:`split_by_root` separates them first. Every move is appended to
    ``folder/manifest.csv`` as soon as it is done, so an interrupted run still
    says where each file went. Names never collide: a file already in
    quarantine gets a ``-2``, ``-3`` ... suffix.
    """
    outside = split_by_root(files, root)[1]
    if outside:
        raise DataError(f"{len(outside)} files to quarantine lie outside the data root {root}, "
                        f"e.g. {outside[0][0]}; nothing was moved.",
                        "imgcls only moves files under the data root; move those yourself.")
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create quarantine folder {folder}: {exc.strerror}",
                        "Pass a writable --quarantine folder.") from exc
    moved: list[Moved] = []
    for path, reason in files:
        target = free_name(folder / _relative(Path(path), root))
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


def _relative(path: Path, root: Path) -> Path:
    return path.resolve().relative_to(Path(root).resolve())  # under root: checked before


def free_name(target: Path) -> Path:
    candidate, n = target, 1
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate


def _append(manifest: Path, item: Moved) -> None:
    append_text(manifest, csv_rows(COLUMNS, item, header=not manifest.exists()))


def csv_rows(columns: Sequence[str], item: Moved, header: bool) -> str:
    """One manifest line for ``item`` (with the header line first when ``header``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(columns)
    writer.writerow(safe_row([str(item.original.resolve()), str(item.quarantined.resolve()),
                              item.reason,
                              datetime.now(timezone.utc).isoformat(timespec="seconds")]))
    return buffer.getvalue()


def quarantine_root(source: str, loader: str, folder: Path, image_root: str | None = None
                    ) -> Path:
    """The data root that quarantined paths are kept relative to; refuses a folder inside
    a folder data set, where the quarantined images would be loaded as a class."""
    if image_root:
        root = Path(image_root).expanduser().resolve()
    else:
        source_path = Path(source).expanduser().resolve()
        root = source_path if source_path.is_dir() else source_path.parent
    target = Path(folder).expanduser().resolve()
    if loader != "csv" and (target == root or root in target.parents):
        raise DataError(f"The quarantine folder {folder} is inside the data folder {root}; "
                        "its images would be loaded as a class.",
                        "Pass a folder outside the data, e.g. --quarantine ../quarantine.")
    return root
