"""Plots (matplotlib, no GUI backend), the HTML pages' renderer, and report.html of a run.

Every page is a jinja2 template in imgcls/templates with one shared stylesheet inlined.
The report embeds every image as a data URI, so it opens offline and can be mailed or
archived as one file.
"""

from __future__ import annotations

import base64
import functools
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DecodeError
from .images import decode
from .io import atomic_write_bytes, atomic_write_text
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


@functools.cache
def _environment() -> Any:
    import jinja2

    # Autoescape everywhere: class names, paths and options are data and may hold markup.
    return jinja2.Environment(loader=jinja2.PackageLoader("imgcls", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_page(template: str, **context: Any) -> str:
    """Render ``imgcls/templates/<template>`` (one shared, inlined stylesheet) to a string."""
    return _environment().get_template(template).render(**context)


def _mistakes(mistakes: list[dict[str, Any]], cams: dict[str, bytes]) -> list[dict[str, Any]]:
    """The gallery's entries: those whose image can still be read, with their CAM if any."""
    shown = []
    for row in mistakes[:GALLERY_SIZE]:
        uri = thumbnail_uri(row["path"])
        if uri is None:
            continue
        cam = cams.get(row["path"])
        shown.append({"uri": uri, "cam": cam and data_uri(cam, "image/png"),
                      "true": row["true"], "predicted": row["predicted"],
                      "confidence": row["confidence"], "name": Path(row["path"]).name})
    return shown


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
    class_rows = [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                   r["support"]] for r in per_class]
    return render_page("report.html.j2", title=title, headline=headline,
                       titles={"confusion": "Confusion matrix",
                               "mistakes": "Most confident mistakes"} | (titles or {}),
                       curves=data_uri(curves_png, "image/png"),
                       confusion=data_uri(confusion_png, "image/png"),
                       figures=[(t, data_uri(png, "image/png")) for t, png in figures or []],
                       class_rows=class_rows, tables=tables or [],
                       mistakes=_mistakes(mistakes, cams or {}), with_cams=bool(cams),
                       cam_note=cam_note, config_rows=[list(item) for item in config.items()])


def write_report(path: str | os.PathLike, **parts: Any) -> Path:
    """Render with :func:`render_report` and write atomically."""
    return atomic_write_text(path, render_report(**parts))
