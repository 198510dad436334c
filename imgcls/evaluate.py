"""Evaluate a model on labelled images: metrics, per-class table, confusion, mistakes.

Used by ``imgcls eval`` (checkpoint or .onnx, through the inference runners)
and at the end of training (the best weights on the validation split).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .data import call_loader, resolve_loader
from .data.cache import DecodedImages
from .data.loader import DeviceNormaliser, make_loader
from .data.splits import check_split, select_split
from .errors import DataError
from .infer.engine import Failure, predict_stream
from .infer.runners import open_model
from .infer.writers import safe_row
from .io import atomic_write_bytes, atomic_write_text
from .metrics import confusion_matrix, macro_f1, per_class_table
from .multilabel import require_multiclass
from .specs import Preprocess, Sample

if TYPE_CHECKING:  # train imports this module: the type only, not the import
    from .train.precision import Precision


@dataclass
class Evaluation:
    """Per-image class probabilities and true labels, and everything derived from them."""

    classes: list[str]
    paths: list[str]
    labels: np.ndarray
    probs: np.ndarray
    top_k: int = 5
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    @property
    def matrix(self) -> np.ndarray:
        return confusion_matrix(self.labels, self.predicted, len(self.classes))

    def summary(self) -> dict[str, Any]:
        """Headline metrics plus the per-class table, ready for metrics.json."""
        n = max(len(self.labels), 1)
        true_probs = self.probs[np.arange(len(self.labels)), self.labels]
        result: dict[str, Any] = {
            "images": len(self.labels),
            "unreadable": len(self.failures),
            "accuracy": float((self.predicted == self.labels).sum() / n),
            "macro_f1": macro_f1(self.matrix),
            "loss": float(-np.log(np.clip(true_probs, 1e-12, None)).mean()) if len(
                self.labels) else 0.0,
        }
        k = min(self.top_k, len(self.classes))
        if k < len(self.classes):
            top = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
            result[f"top{k}_accuracy"] = float((top == self.labels[:, None]).any(1).sum() / n)
        result["per_class"] = per_class_table(self.matrix, self.classes)
        return result

    def misclassified(self) -> list[dict[str, Any]]:
        """Wrong predictions, most confident first: the most instructive mistakes."""
        wrong = np.flatnonzero(self.predicted != self.labels)
        order = wrong[np.argsort(-self.confidence[wrong], kind="stable")]
        return [{"path": self.paths[i], "true": self.classes[self.labels[i]],
                 "predicted": self.classes[self.predicted[i]],
                 "confidence": float(self.confidence[i])} for i in order]


# --------------------------------------------------------------------------- in memory


def batch_logits(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 normalize: DeviceNormaliser, precision: Precision | None = None
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float32 logits, labels) per batch, in eval mode without gradients: the one
    evaluation loop, behind training's validation, ``imgcls eval`` and the audit."""
    model.eval()
    for images, labels in batches:
        # Not around the yield: the caller's code between batches keeps its own grad mode.
        with torch.no_grad(), precision.autocast() if precision else contextlib.nullcontext():
            logits = model(normalize(images))
        yield logits.float(), labels


def predict_decoded(model: nn.Module, images: DecodedImages, preprocess: Preprocess,
                    device: torch.device, batch_size: int = 256,
                    precision: Precision | None = None, multilabel: bool = False) -> np.ndarray:
    """Class probabilities (N x classes) for already-decoded pixels (``multilabel``: one
    sigmoid per class)."""
    batches = batch_logits(model, make_loader(images, batch_size),
                           DeviceNormaliser(preprocess, device), precision)
    chunks = [(torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).cpu().numpy()
              for logits, _ in batches]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


# --------------------------------------------------------------------------- from files


def select_samples(data: str, options: dict[str, Any], split: str,
                   classes: list[str]) -> list[Sample]:
    """Labelled samples of ``split`` of ``data``, labels re-indexed into the model's ``classes``.

    ``split`` is one of imgcls.data.splits.SPLITS; any other is a ConfigError.
    """
    check_split(split)  # before loading: a typo should not cost a scan of the data
    name, source = resolve_loader(data)
    loaded = call_loader(name, source, options)
    samples = select_split(loaded, split, data)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({loaded.classes[label] for _, label in samples} - set(index))
    if unknown:
        raise DataError(f"Classes {unknown} in {data!r} are not classes of the model "
                        f"({', '.join(classes)}).",
                        "Evaluate on data labelled with the model's class names.")
    if not samples:
        raise DataError(f"No images to evaluate in {data!r}.", "Check --data and --split.")
    return [(Path(path), index[loaded.classes[label]]) for path, label in samples]


def evaluate_file(model_path: str | os.PathLike, data: str, *, device: str = "auto",
                  split: str = "auto", batch_size: int = 64, top_k: int = 5,
                  data_options: dict[str, Any] | None = None,
                  on_progress: Callable[[int], None] | None = None, tta: str = "none",
                  ) -> tuple[Evaluation, dict[str, Any]]:
    """Run a checkpoint or .onnx file over ``data``; returns the evaluation and its manifest.

    ``tta="flip"`` averages each image's logits with its mirror image's.
    """
    check_split(split)  # before opening the model, which imports torch or onnxruntime
    runner = open_model(model_path, device, tta=tta)
    require_multiclass(runner.manifest, "evaluate_file()")  # evaluate_multilabel does those
    classes: list[str] = list(runner.manifest["classes"])
    samples = select_samples(data, data_options or {}, split, classes)
    labels_by_path = {str(path): label for path, label in samples}
    paths, labels, rows, failures = [], [], [], []
    stream = predict_stream(runner, (path for path, _ in samples), batch_size=batch_size,
                            top_k=len(classes))
    for done, item in enumerate(stream, start=1):
        if isinstance(item, Failure):
            failures.append((item.path, item.reason))
        else:
            paths.append(item.path)
            labels.append(labels_by_path[item.path])
            rows.append(_probability_row(item.labels, item.scores, classes))
        if on_progress:
            on_progress(done)
    probs = np.array(rows, dtype=np.float64).reshape(len(rows), len(classes))
    evaluation = Evaluation(classes, paths, np.array(labels, dtype=np.int64), probs, top_k,
                            failures)
    return evaluation, runner.manifest


def _probability_row(labels: Iterable[str], scores: Iterable[float],
                     classes: list[str]) -> list[float]:
    row = dict(zip(labels, scores, strict=True))
    return [row.get(name, 0.0) for name in classes]


# --------------------------------------------------------------------------- outputs


def matrix_csv(classes: list[str], matrix: np.ndarray) -> bytes:
    """A true x predicted count table as CSV, one row per true class."""
    return _csv_bytes(["true\\predicted", *classes],
                      ([name, *matrix[i].tolist()] for i, name in enumerate(classes)))


def _csv_bytes(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    # Class names and paths come from the data: a label like =HYPERLINK(...) must
    # not run as a formula when the table is opened in a spreadsheet.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(safe_row(header))
    writer.writerows(safe_row(row) for row in rows)
    return buffer.getvalue().encode("utf-8", "surrogateescape")


def write_evaluation(evaluation: Evaluation, out_dir: str | os.PathLike,
                     extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """metrics.json, per_class.csv, confusion.csv, confusion.png and misclassified.csv."""
    from .report import plot_confusion

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = evaluation.summary() | (extra or {})
    matrix = evaluation.matrix
    paths = {name: out / name for name in ("metrics.json", "per_class.csv", "confusion.csv",
                                           "confusion.png", "misclassified.csv")}
    atomic_write_text(paths["metrics.json"], json.dumps(summary, indent=2))
    atomic_write_bytes(paths["per_class.csv"], _csv_bytes(
        ["class", "precision", "recall", "f1", "support"],
        ([r["class"], f"{r['precision']:.6f}", f"{r['recall']:.6f}", f"{r['f1']:.6f}",
          r["support"]] for r in summary["per_class"])))
    atomic_write_bytes(paths["confusion.csv"], matrix_csv(evaluation.classes, matrix))
    atomic_write_bytes(paths["misclassified.csv"], _csv_bytes(
        ["path", "true", "predicted", "confidence"],
        ([r["path"], r["true"], r["predicted"], f"{r['confidence']:.6f}"]
         for r in evaluation.misclassified())))
    plot_confusion(matrix, evaluation.classes, paths["confusion.png"])
    return paths
