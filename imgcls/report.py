"""Plots (matplotlib, no GUI backend) and a self-contained HTML report of a run.

The report embeds every image as a data URI, so it opens offline and can be
mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import atomic_write_bytes
from .errors import DecodeError
from .images import decode
from .metrics import normalize_rows

GALLERY_SIZE = 24
THUMBNAIL_PX = 128
# Above this many classes, cell labels would be unreadable: draw the colours only.
ANNOTATE_MAX_CLASSES = 20


def new_figure(width: float, height: float) -> Any:
    # Figure + Agg canvas directly: no pyplot, so no global state and no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _save(figure: Any, path: Path) -> Path:
    atomic_write_bytes(path, png_bytes(figure))
    return path


def plot_curves(history: list[dict[str, float]], path: str | os.PathLike) -> Path:
    """Loss and accuracy per epoch, training and validation, as one PNG."""
    figure = new_figure(10, 4)
    loss_axes, acc_axes = figure.subplots(1, 2)
    epochs = [record["epoch"] for record in history]
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        loss_axes.plot(epochs, [r[key] for r in history], marker="o", label=label)
    for key, label in (("train_acc", "train accuracy"), ("val_acc", "validation accuracy"),
                       ("val_macro_f1", "validation macro-F1")):
        if all(key in r for r in history):
            acc_axes.plot(epochs, [r[key] for r in history], marker="o", label=label)
    loss_axes.set(title="Loss", xlabel="epoch")
    acc_axes.set(title="Accuracy", xlabel="epoch", ylim=(0, 1.02))
    for axes in (loss_axes, acc_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    return _save(figure, Path(path))


def plot_confusion(matrix: np.ndarray, classes: list[str], path: str | os.PathLike) -> Path:
    """Raw counts and row-normalised (recall) confusion matrices side by side."""
    n = len(classes)
    side = min(14.0, 3.0 + 0.45 * n)
    figure = new_figure(2 * side, 0.8 * side + 0.6)
    for axes, values, title in zip(figure.subplots(1, 2),
                                   (matrix, normalize_rows(matrix)),
                                   ("Confusion matrix (counts)", "Normalised by true class"),
                                   strict=True):
        image = axes.imshow(values, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=axes, shrink=0.8)
        axes.set(title=title, xlabel="predicted", ylabel="true")
        ticks = np.arange(n) if n <= 60 else []
        axes.set_xticks(ticks, [classes[i] for i in ticks], rotation=90 if n > 6 else 0)
        axes.set_yticks(ticks, [classes[i] for i in ticks])
        if n <= ANNOTATE_MAX_CLASSES:
            _annotate(axes, values)
    return _save(figure, Path(path))


def _annotate(axes: Any, values: np.ndarray) -> None:
    top = values.max() or 1
    for (row, col), value in np.ndenumerate(values):
        text = f"{value:.2f}" if values.dtype.kind == "f" else str(value)
        axes.text(col, row, text, ha="center", va="center", fontsize=8,
                  color="white" if value > top / 2 else "black")


# --------------------------------------------------------------------------- HTML


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(path: str | os.PathLike, size: int = THUMBNAIL_PX) -> str | None:
    """A small JPEG of the image as a data URI; None when it cannot be decoded any more."""
    try:
        image = decode(path, draft_size=(size, size))
    except DecodeError:
        return None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return data_uri(buffer.getvalue(), "image/jpeg")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
img.plot{max-width:100%}table{border-collapse:collapse;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}.gallery{display:flex;flex-wrap:wrap;gap:.8rem}
figure{margin:0;width:140px;font-size:.75rem}figure img{width:128px;height:128px;
object-fit:contain;background:#eee}figure.with-cam{width:264px}figure img.cam{margin-left:4px}
.summary span{margin-right:1.5rem}
"""


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gallery(mistakes: list[dict[str, Any]], cams: dict[str, bytes] | None = None,
             cam_note: str | None = None) -> str:
    """Thumbnails of the mistakes, each with its Grad-CAM overlay when ``cams`` has one."""
    cams = cams or {}
    figures = []
    for row in mistakes[:GALLERY_SIZE]:
        uri = thumbnail_uri(row["path"])
        if uri is None:
            continue
        caption = (f"true <b>{html.escape(row['true'])}</b>, predicted "
                   f"<b>{html.escape(row['predicted'])}</b> ({row['confidence']:.0%})<br>"
                   f"{html.escape(Path(row['path']).name)}")
        cam = cams.get(row["path"])
        overlay = "" if cam is None else (
            f'<img class="cam" src="{data_uri(cam, "image/png")}" '
            f'alt="Grad-CAM for {html.escape(row["predicted"], quote=True)}">')
        kind = ' class="with-cam"' if cam else ""
        figures.append(f'<figure{kind}><img src="{uri}" alt="misclassified image">{overlay}'
                       f"<figcaption>{caption}</figcaption></figure>")
    if not figures:
        return "<p>No misclassified validation images.</p>"
    note = ("<p>Beside each image: where the model looked for the class it predicted "
            "(Grad-CAM; red is most).</p>" if cams else "")
    if cam_note:
        note += f"<p>{html.escape(cam_note)}</p>"
    return f'{note}<div class="gallery">{"".join(figures)}</div>'


def render_report(title: str, headline: dict[str, str], curves_png: bytes,
                  confusion_png: bytes, per_class: list[dict[str, Any]],
                  mistakes: list[dict[str, Any]], config: dict[str, Any],
                  cams: dict[str, bytes] | None = None, cam_note: str | None = None,
                  titles: dict[str, str] | None = None,
                  tables: list[tuple[str, list[str], list[list[Any]]]] | None = None,
                  figures: list[tuple[str, bytes]] | None = None) -> str:
    """The whole report as one HTML string; nothing in it points outside the file.

    ``cams`` maps a mistake's path to a PNG of its class-activation map overlay.
    ``titles`` renames the ``confusion`` and ``mistakes`` sections; ``tables`` adds
    (title, header, rows) sections after the per-class metrics and ``figures`` (title,
    PNG) after the confusion matrix (multi-label reports).
    """
    titles = {"confusion": "Confusion matrix", "mistakes": "Most confident mistakes"} | (
        titles or {})
    more = "".join(f"<h2>{html.escape(title)}</h2>{_table(header, rows)}"
                   for title, header, rows in tables or [])
    plots = "".join(f'<h2>{html.escape(title)}</h2><img class="plot" alt="'
                    f'{html.escape(title.lower(), quote=True)}" src="{data_uri(png, "image/png")}">'
                    for title, png in figures or [])
    summary = "".join(f"<span>{html.escape(k)}: <b>{html.escape(v)}</b></span>"
                      for k, v in headline.items())
    class_rows = [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                   r["support"]] for r in per_class]
    config_rows = [[key, value] for key, value in config.items()]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1><p class="summary">{summary}</p>
<h2>Training curves</h2><img class="plot" id="curves" alt="training curves"
 src="{data_uri(curves_png, 'image/png')}">
<h2>{html.escape(titles["confusion"])}</h2><img class="plot" id="confusion"
 alt="{html.escape(titles["confusion"].lower(), quote=True)}"
 src="{data_uri(confusion_png, 'image/png')}">{plots}
<h2>Per-class metrics</h2>
{_table(["class", "precision", "recall", "F1", "support"], class_rows)}{more}
<h2>{html.escape(titles["mistakes"])}</h2>{_gallery(mistakes, cams, cam_note)}
<h2>Configuration</h2><details><summary>options</summary>
{_table(["option", "value"], config_rows)}</details>
</body></html>
"""


def write_report(path: str | os.PathLike, **parts: Any) -> Path:
    """Render with :func:`render_report` and write atomically."""
    path = Path(path)
    atomic_write_bytes(path, render_report(**parts).encode("utf-8"))
    return path
