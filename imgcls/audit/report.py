"""What ``imgcls data audit`` writes: CSVs, audit.html, corrected labels, quarantine copies.

The data itself is never changed: ``--relabel`` and ``--quarantine`` write new CSVs
(``relabelled.csv``, ``cleaned.csv``) to train on instead, and quarantine copies the
suspects; it moves them only when asked to (``move=True``), through
:func:`imgcls.audit.quarantine.quarantine`, which keeps a manifest of every move.
"""

from __future__ import annotations

import csv
import html
import io
import os
import shutil
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_bytes
from ..errors import DataError
from ..infer.writers import safe_row
from .duplicates import Entry
from .probs import probs_csv
from .quarantine import Moved, free_name, quarantine, split_by_root
from .run import AuditResult, LabelIssue

GALLERY = 60  # suspects shown in audit.html (every one is in label_issues.csv)
GROUPS = 30  # near-duplicate groups shown
THUMBNAIL = 112
COPIED = "copied.csv"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.gallery{display:flex;flex-wrap:wrap;gap:.8rem}.group{display:flex;gap:.6rem;margin:.6rem 0;
padding:.4rem;border:1px solid #eee}figure{margin:0;width:128px;font-size:.75rem;
overflow-wrap:anywhere}figure img{width:112px;height:112px;object-fit:contain;background:#eee}
.given{color:#b00}.suggested{color:#070}.summary span{margin-right:1.5rem}
"""


def _csv(header: list[str], rows: Iterable[Iterable[Any]], safe: bool = True) -> bytes:
    # Reports are opened in spreadsheets: cells that would run as formulas are quoted
    # (safe_row). Label files are read back by imgcls, so they keep the exact values.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in [header, *rows]:
        writer.writerow(safe_row(row) if safe else list(row))
    return buffer.getvalue().encode()


def write_outputs(result: AuditResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """label_issues.csv, pred_probs.csv, near_duplicates.csv and audit.html in ``out_dir``."""
    out = Path(out_dir)
    paths = {name: out / name for name in ("label_issues.csv", "pred_probs.csv",
                                           "near_duplicates.csv", "audit.html")}
    atomic_write_bytes(paths["label_issues.csv"], _csv(
        ["path", "given_label", "suggested_label", "score"],
        ([str(i.path), i.given, i.suggested, f"{i.score:.6f}"] for i in result.issues)))
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
    atomic_write_bytes(paths["audit.html"], render_html(result).encode("utf-8"))
    return paths


def _labels_csv(entries: Iterable[tuple[Entry, str]]) -> bytes:
    return _csv(["path", "label", "split"],
                ([os.path.abspath(entry.path), label, entry.split] for entry, label in entries),
                safe=False)


def write_relabelled(result: AuditResult, out_dir: str | os.PathLike) -> Path:
    """relabelled.csv: every image, the flagged ones with their suggested label."""
    suggested = {str(issue.path): issue.suggested for issue in result.issues}
    path = Path(out_dir) / "relabelled.csv"
    atomic_write_bytes(path, _labels_csv((entry, suggested.get(str(entry.path), entry.label))
                                         for entry in result.entries))
    return path


def write_cleaned(result: AuditResult, out_dir: str | os.PathLike) -> Path:
    """cleaned.csv: every image but the flagged ones, labels as given."""
    flagged = {str(issue.path) for issue in result.issues}
    path = Path(out_dir) / "cleaned.csv"
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
    new = not manifest.exists()
    with open(manifest, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["original", "copy", "reason", "copied_at"])
        writer.writerow(safe_row([str(item.original.resolve()), str(item.quarantined.resolve()),
                                  item.reason,
                                  datetime.now(timezone.utc).isoformat(timespec="seconds")]))


# --------------------------------------------------------------------------- HTML


def _figure(path: Path, caption: str) -> str:
    from ..report import thumbnail_uri

    uri = thumbnail_uri(path, THUMBNAIL)
    image = (f'<img src="{uri}" alt="{html.escape(path.name)}">' if uri
             else "<p>(no longer readable)</p>")
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


def _suspects(issues: list[LabelIssue]) -> str:
    if not issues:
        return "<p>No label issues found.</p>"
    figures = [_figure(issue.path, f'<span class="given">given <b>{html.escape(issue.given)}'
                                   f'</b></span><br><span class="suggested">suggested <b>'
                                   f'{html.escape(issue.suggested)}</b></span><br>score '
                                   f"{issue.score:.3f}<br>{html.escape(issue.path.name)}")
               for issue in issues[:GALLERY]]
    more = (f"<p>... and {len(issues) - GALLERY} more in label_issues.csv.</p>"
            if len(issues) > GALLERY else "")
    return f'<div class="gallery">{"".join(figures)}</div>{more}'


def _groups(result: AuditResult) -> str:
    if not result.searched_duplicates:
        return "<p>Not searched (--no-duplicates).</p>"
    if not result.duplicates:
        return "<p>No near-duplicates across classes or between train and val.</p>"
    rows = []
    for number, group in enumerate(result.duplicates[:GROUPS], start=1):
        figures = "".join(_figure(m.path, f"{html.escape(m.split)} / <b>"
                                          f"{html.escape(m.label)}</b><br>"
                                          f"{html.escape(m.path.name)}")
                          for m in group.members[:8])
        rows.append(f'<div class="group"><p>#{number}<br>{html.escape(group.kind)}<br>'
                    f"{group.distance} bits</p>{figures}</div>")
    return "".join(rows)


def render_html(result: AuditResult) -> str:
    """The report as one self-contained HTML string (thumbnails are data URIs)."""
    headline = {"data": result.source, "images audited": str(len(result.audited)),
                "label issues": str(len(result.issues)),
                "near-duplicate groups": str(len(result.duplicates)),
                "accuracy of the predictions": f"{result.accuracy:.1%}"}
    summary = "".join(f"<span>{html.escape(k)}: <b>{html.escape(v)}</b></span>"
                      for k, v in headline.items())
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in result.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>imgcls data audit</title>
<style>{_STYLE}</style></head><body>
<h1>Data audit of {html.escape(result.source)}</h1><p class="summary">{summary}</p>
<p>Predicted probabilities: {html.escape(result.method)}.</p>{f"<ul>{notes}</ul>" if notes else ""}
<h2>Likely wrong labels, most suspicious first</h2>{_suspects(result.issues)}
<h2>Near-duplicates across classes or train/val</h2>{_groups(result)}
</body></html>
"""
