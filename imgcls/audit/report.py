"""What ``imgcls data audit`` writes: CSVs, audit.html, corrected labels, quarantine copies.

The data itself is never changed: ``--relabel`` and ``--quarantine`` write new CSVs
(``relabelled.csv``, ``cleaned.csv``) to train on instead, and quarantine copies the
suspects; it moves them only when asked to (``move=True``), through
:func:`imgcls.audit.quarantine.quarantine`, which keeps a manifest of every move.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..data.csv_loader import LABEL_NAMES, PATH_NAMES, SPLIT_NAMES, column_name
from ..errors import DataError
from ..infer.writers import safe_row
from ..io import append_text, atomic_write_bytes, atomic_write_text
from ..report import render_page, thumbnail_uri
from .duplicates import Entry
from .multilabel import NONE, MultiLabelAuditResult, MultiLabelIssue, fold_separator
from .probs import probs_csv
from .quarantine import Moved, csv_rows, free_name, quarantine, split_by_root
from .run import AuditResult, LabelIssue

GALLERY = 60  # suspects shown in audit.html (every one is in label_issues.csv)
GROUPS = 30  # near-duplicate groups shown
COPIED = "copied.csv"
RESERVED = frozenset(map(column_name, PATH_NAMES + LABEL_NAMES + SPLIT_NAMES))

def _csv(header: list[str], rows: Iterable[Iterable[Any]], safe: bool = True) -> bytes:
    # Reports are opened in spreadsheets: cells that would run as formulas are quoted
    # (safe_row). Label files are read back by imgcls, so they keep the exact values.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in [header, *rows]:
        writer.writerow(safe_row(row) if safe else list(row))
    return buffer.getvalue().encode("utf-8", "surrogateescape")


def write_outputs(result: AuditResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """label_issues.csv, pred_probs.csv, near_duplicates.csv and audit.html in ``out_dir``."""
    out = Path(out_dir)
    paths = {name: out / name for name in ("label_issues.csv", "pred_probs.csv",
                                           "near_duplicates.csv", "audit.html")}
    atomic_write_bytes(paths["label_issues.csv"], _issues_csv(result))
    atomic_write_bytes(paths["pred_probs.csv"], probs_csv(
        [Path(os.path.abspath(e.path)) for e in result.audited], result.probs, result.classes))
    if result.searched_duplicates:
        atomic_write_bytes(paths["near_duplicates.csv"], _csv(
            ["group", "kind", "distance", "path", "split", "label"],
            ([number, group.kind, group.distance, str(m.path), m.split, m.label]
             for number, group in enumerate(result.duplicates, start=1)
             for m in group.members)))
    else:
        del paths["near_duplicates.csv"]
    atomic_write_text(paths["audit.html"], render_html(result))
    return paths


def _issues_csv(result: AuditResult) -> bytes:
    if isinstance(result, MultiLabelAuditResult):
        return _csv(["path", "given_labels", "suggested_labels", "missing_labels",
                     "extra_labels", "score"],
                    ([str(i.path), i.given, i.suggested, ";".join(i.missing), ";".join(i.extra),
                      f"{i.score:.6f}"] for i in result.issues))
    return _csv(["path", "given_label", "suggested_label", "score"],
                ([str(i.path), i.given, i.suggested, f"{i.score:.6f}"] for i in result.issues))


def _label_sets_csv(result: MultiLabelAuditResult, flagged: dict[str, tuple[str, ...]],
                    keep_flagged: bool) -> bytes:
    # One 0/1 column per class: read back as multi-label whatever the class names hold,
    # and an image without labels keeps its row. A class named like a column the csv
    # loader looks for (path, label, split ...) would be taken for it: a labels column then.
    sets = []
    for entry, labels in zip(result.entries, result.label_sets, strict=True):
        if str(entry.path) in flagged and not keep_flagged:
            continue
        names = flagged.get(str(entry.path), tuple(result.classes[i] for i in labels))
        sets.append((entry, set(names)))
    if not any(column_name(name) in RESERVED for name in result.classes):
        return _csv(["path", "split", *result.classes], (
            [os.path.abspath(entry.path), entry.split,
             *("1" if name in names else "0" for name in result.classes)]
            for entry, names in sets), safe=False)
    sep = fold_separator(result.classes)
    return _csv(["path", "labels", "split"], (
        [os.path.abspath(entry.path), sep.join(n for n in result.classes if n in names),
         entry.split] for entry, names in sets), safe=False)


def _labels_csv(entries: Iterable[tuple[Entry, str]]) -> bytes:
    return _csv(["path", "label", "split"],
                ([os.path.abspath(entry.path), label, entry.split] for entry, label in entries),
                safe=False)


def write_relabelled(result: AuditResult, out_dir: str | os.PathLike) -> Path:
    """relabelled.csv: every image, the flagged ones with their suggested label."""
    suggested = {str(issue.path): issue.suggested for issue in result.issues}
    path = Path(out_dir) / "relabelled.csv"
    if isinstance(result, MultiLabelAuditResult):
        atomic_write_bytes(path, _label_sets_csv(result, {
            str(i.path): i.suggested_labels for i in result.issues}, keep_flagged=True))
        return path
    atomic_write_bytes(path, _labels_csv((entry, suggested.get(str(entry.path), entry.label))
                                         for entry in result.entries))
    return path


def write_cleaned(result: AuditResult, out_dir: str | os.PathLike) -> Path:
    """cleaned.csv: every image but the flagged ones, labels as given."""
    flagged = {str(issue.path) for issue in result.issues}
    path = Path(out_dir) / "cleaned.csv"
    if isinstance(result, MultiLabelAuditResult):
        atomic_write_bytes(path, _label_sets_csv(result, dict.fromkeys(flagged, ()),
                                                 keep_flagged=False))
        return path
    atomic_write_bytes(path, _labels_csv((entry, entry.label) for entry in result.entries
                                         if str(entry.path) not in flagged))
    return path


def _reason(issue: LabelIssue) -> str:
    return (f"label issue: given {issue.given!r}, suggested {issue.suggested!r}, "
            f"score {issue.score:.4f}")


def quarantine_issues(issues: list[LabelIssue], folder: Path, root: Path, move: bool = False
                      ) -> tuple[list[Moved], list[Path]]:
    """Copy the flagged images into ``folder/<given label>/``, listed in copied.csv; or,
    with ``move``, move those under ``root`` as ``imgcls data check --quarantine`` does
    (path kept relative to ``root``, listed in manifest.csv). Returns what was done and
    the files left alone (only a move leaves any: those outside ``root``)."""
    if move:
        inside, outside = split_by_root([(issue.path, _reason(issue)) for issue in issues],
                                        root)
        return (quarantine(inside, folder, root) if inside else []), [p for p, _ in outside]
    done: list[Moved] = []
    for issue in issues:
        target = free_name(folder / _folder_name(issue.given) / issue.path.name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(issue.path, target)
        except OSError as exc:
            raise DataError(f"Cannot copy {issue.path} into {folder}: {exc.strerror or exc}",
                            f"{len(done)} files were copied before it; see "
                            f"{folder / COPIED}.") from exc
        done.append(Moved(issue.path, target, _reason(issue)))
        _append_copied(folder / COPIED, done[-1])
    return done, []


def _folder_name(label: str) -> str:
    # A class name is data: it must not climb out of the quarantine folder.
    name = "".join("_" if c in '/\\\0' else c for c in label).strip()
    return "_" + name if name in ("", ".", "..") else name


def _append_copied(manifest: Path, item: Moved) -> None:
    append_text(manifest, csv_rows(["original", "copy", "reason", "copied_at"], item,
                                   header=not manifest.exists()))


# --------------------------------------------------------------------------- HTML


def _thumb(path: Path) -> dict[str, Any]:
    return {"uri": thumbnail_uri(path), "name": path.name}


def _suspect(issue: LabelIssue) -> dict[str, Any]:
    if isinstance(issue, MultiLabelIssue):
        return {"given": issue.given or NONE, "suggested": issue.suggested or NONE,
                "score": issue.score, "missing": list(issue.missing), "extra": list(issue.extra)}
    return {"given": issue.given, "suggested": issue.suggested, "score": issue.score,
            "missing": [], "extra": []}


def render_html(result: AuditResult) -> str:
    """The report as one self-contained HTML string (thumbnails are data URIs)."""
    headline = {"data": result.source, "images audited": str(len(result.audited)),
                "label issues": str(len(result.issues)),
                "near-duplicate groups": str(len(result.duplicates)),
                "accuracy of the predictions": f"{result.accuracy:.1%}"}
    suspects = [_thumb(i.path) | _suspect(i) for i in result.issues[:GALLERY]]
    if isinstance(result, MultiLabelAuditResult):
        headline["accuracy of the predictions"] = f"{result.accuracy:.1%} exact match"
        headline[result.map_name] = f"{result.mean_ap:.3f}"
    groups = [{"kind": group.kind, "distance": group.distance,
               "members": [_thumb(m.path) | {"split": m.split, "label": m.label}
                           for m in group.members[:8]]}
              for group in result.duplicates[:GROUPS]]
    return render_page("audit.html.j2", title="imgcls data audit", source=result.source,
                       headline=headline, method=result.method, notes=result.notes,
                       warnings=result.warnings,
                       suspects=suspects, more=max(0, len(result.issues) - GALLERY),
                       searched=result.searched_duplicates, groups=groups)
