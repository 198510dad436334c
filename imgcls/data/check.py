"""``imgcls data check``: fully decode every file of a data set and report what is wrong.

Each file is read once, hashed (exact duplicates, train/val leakage), its
header probed (real format vs extension, mode, size) and decoded in full by
the same decoder training uses, in parallel threads.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DecodeError
from ..images import decode, extension_matches, probe
from ..system import default_workers
from . import call_loader, resolve_loader
from .folder import is_under

DEFAULT_MIN_SIZE = 32


@dataclass(frozen=True)
class FileResult:
    """What one file turned out to be; ``error`` is set when it cannot be used."""

    path: Path
    split: str
    label: str
    sha256: str = ""
    format: str = ""
    mode: str = ""
    size: tuple[int, int] = (0, 0)
    error: str = ""


@dataclass
class CheckReport:
    """Findings for a data set; every list holds paths (or groups of paths) to look at."""

    source: str
    loader: str
    classes: list[str]
    files: int = 0
    seconds: float = 0.0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> n
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    mismatched: list[tuple[Path, str]] = field(default_factory=list)  # path, real format
    modes: dict[str, list[Path]] = field(default_factory=dict)  # non-RGB mode -> paths
    tiny: list[tuple[Path, tuple[int, int]]] = field(default_factory=list)
    duplicates: list[list[Path]] = field(default_factory=list)
    leaks: list[list[Path]] = field(default_factory=list)  # groups in both train and val
    conflicts: list[list[Path]] = field(default_factory=list)  # same bytes, other labels
    outside: list[Path] = field(default_factory=list)  # resolve outside the data root
    root: str = ""  # the data root files should lie under ("" when there is none)
    notes: list[str] = field(default_factory=list)
    min_size: int = DEFAULT_MIN_SIZE
    task: str = "multiclass"
    # Multi-label only: images with no label, and pairs of labels on one image, per split
    # (counts holds each class's images, so its rows add up to more than the images).
    without_labels: dict[str, int] = field(default_factory=dict)
    co_occurrence: dict[str, dict[str, int]] = field(default_factory=dict)  # "a;b" -> n

    def to_dict(self) -> dict[str, Any]:
        def paths(items: list) -> list:
            return [str(p) if isinstance(p, Path) else paths(p) if isinstance(p, list)
                    else [str(p[0]), p[1]] for p in items]

        return {"source": self.source, "loader": self.loader, "classes": self.classes,
                "files": self.files, "seconds": round(self.seconds, 3), "counts": self.counts,
                "unreadable": paths(self.unreadable), "mismatched": paths(self.mismatched),
                "modes": {mode: paths(found) for mode, found in self.modes.items()},
                "tiny": [[str(p), list(size)] for p, size in self.tiny],
                "duplicates": paths(self.duplicates), "leaks": paths(self.leaks),
                "conflicts": paths(self.conflicts), "outside": paths(self.outside),
                "root": self.root, "notes": self.notes,
                "min_size": self.min_size, "task": self.task,
                **({"without_labels": self.without_labels, "co_occurrence": self.co_occurrence}
                   if self.task == "multilabel" else {})}


def inspect_file(path: Path, split: str = "", label: str = "") -> FileResult:
    """Read, hash, probe and fully decode one file; never raises for a bad image."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileResult(path, split, label, error=f"cannot read: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return FileResult(path, split, label, sha256=digest, error="file is empty (0 bytes)")
    try:
        info = probe(data, name=name)
        decode(data, name=name)
    except DecodeError as exc:
        reason = exc.message.removeprefix(f"Cannot decode {name!r}: ")
        return FileResult(path, split, label, sha256=digest, error=reason)
    return FileResult(path, split, label, digest, info.format, info.mode, info.size)


def check_data(data: str, options: dict[str, Any] | None = None,
               min_size: int = DEFAULT_MIN_SIZE, workers: int | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Scan every file ``data`` lists (see the module docstring); ``on_progress(done, total)``."""
    name, source = resolve_loader(data)
    loaded = call_loader(name, source, options or {})
    def named(label: Any) -> str:  # a label set is its ;-joined names ("" for none)
        return ";".join(loaded.classes[i] for i in label) if isinstance(label, tuple) \
            else loaded.classes[label]

    entries = [(Path(path), split, named(label))
               for split, samples in (("train", loaded.train), ("val", loaded.val or []))
               for path, label in samples]
    report = CheckReport(source=loaded.source or data, loader=name, classes=loaded.classes,
                         files=len(entries), notes=list(loaded.notes), min_size=min_size,
                         task=loaded.task)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        results = []
        for done, result in enumerate(pool.map(lambda e: inspect_file(*e), entries), start=1):
            results.append(result)
            if on_progress:
                on_progress(done, len(entries))
    report.seconds = time.perf_counter() - started
    summarise(report, results)
    root = data_root_of(loaded.source or source or "", (options or {}).get("image_root"))
    if root is not None:
        report.root = str(root)
        report.outside = [path for path, _, _ in entries if not is_under(path, root)]
    return report


def data_root_of(source: str, image_root: str | None = None) -> Path | None:
    """The folder a data set's files must lie under: a CSV's ``image_root`` or folder,
    or the data folder itself; None for a data set that is not on disk."""
    if image_root:
        return Path(image_root).expanduser().resolve()
    path = Path(source).expanduser()
    if not source or not path.exists():
        return None
    return path.resolve() if path.is_dir() else path.resolve().parent


def summarise(report: CheckReport, results: list[FileResult]) -> None:
    """Fill ``report`` from per-file results."""
    counts: dict[str, Counter] = defaultdict(Counter)
    modes: dict[str, list[Path]] = defaultdict(list)
    for result in results:
        if result.error:
            report.unreadable.append((result.path, result.error))
            continue
        names = result.label.split(";") if report.task == "multilabel" else [result.label]
        counts[result.split].update(name for name in names if name)
        if report.task == "multilabel":
            _count_label_set(report, result.split, [name for name in names if name])
        if not extension_matches(result.path, result.format):
            report.mismatched.append((result.path, result.format))
        if result.mode != "RGB":
            modes[result.mode].append(result.path)
        if min(result.size) < report.min_size:
            report.tiny.append((result.path, result.size))
    report.counts = {split: {name: counts[split][name] for name in report.classes}
                     for split in ("train", "val") if split in counts}
    report.modes = dict(sorted(modes.items()))
    _duplicates(report, results)


def _count_label_set(report: CheckReport, split: str, names: list[str]) -> None:
    if not names:
        report.without_labels[split] = report.without_labels.get(split, 0) + 1
    pairs = report.co_occurrence.setdefault(split, {})
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            pairs[f"{first};{second}"] = pairs.get(f"{first};{second}", 0) + 1


def _duplicates(report: CheckReport, results: list[FileResult]) -> None:
    groups: dict[str, list[FileResult]] = defaultdict(list)
    for result in results:
        if result.sha256:
            groups[result.sha256].append(result)
    for group in groups.values():
        if len(group) < 2:
            continue
        paths = sorted(result.path for result in group)
        report.duplicates.append(paths)
        if len({result.split for result in group}) > 1:
            report.leaks.append(paths)
        if len({result.label for result in group}) > 1:
            report.conflicts.append(paths)
    for found in (report.duplicates, report.leaks, report.conflicts):
        found.sort()
