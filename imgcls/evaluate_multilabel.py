"""Evaluating a multi-label model: mAP, per-class AP and F1 at its thresholds, a
co-occurrence table of true vs predicted labels, and the images with the largest errors.

Used by ``imgcls eval`` on a multi-label model and at the end of a multi-label run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import resolve_loader
from .data.splits import select_split
from .errors import DataError
from .evaluate import _csv_bytes, matrix_csv
from .infer.engine import Failure, predict_stream
from .io import atomic_write_bytes
from .multilabel import co_occurrence, decide, multi_hot, summary, thresholds_for, unknown_label
from .registry import get_dataset


@dataclass
class MultiLabelEvaluation:
    """Per-image class probabilities and true label sets, and what follows from them."""

    classes: list[str]
    paths: list[str]
    targets: np.ndarray  # N x classes, multi-hot
    probs: np.ndarray  # N x classes, sigmoid probabilities
    thresholds: list[float]
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def chosen(self) -> np.ndarray:
        return decide(self.probs, np.asarray(self.thresholds))

    @property
    def matrix(self) -> np.ndarray:
        """``matrix[true, predicted]``: see :func:`imgcls.multilabel.co_occurrence`."""
        return co_occurrence(self.targets, self.chosen)

    def summary(self) -> dict[str, Any]:
        return summary(self.probs, self.targets, self.thresholds, self.classes) | {
            "unreadable": len(self.failures), "co_occurrence": self.matrix.tolist()}

    def largest_errors(self) -> list[dict[str, Any]]:
        """Images whose predicted set is wrong, the largest error first: the largest gap
        between a class's probability and its truth (0 or 1)."""
        chosen, truth = self.chosen, self.targets > 0.5
        error = np.abs(self.targets - self.probs).max(1)
        wrong = np.flatnonzero((chosen != truth).any(1))
        order = wrong[np.argsort(-error[wrong], kind="stable")]
        return [{"path": self.paths[i], "true": self._names(truth[i]),
                 "predicted": self._names(chosen[i]), "confidence": float(error[i])}
                for i in order]

    def _names(self, row: np.ndarray) -> str:
        return ";".join(self.classes[j] for j in np.flatnonzero(row))


def select_label_sets(data: str, options: dict[str, Any], split: str,
                      classes: list[str]) -> list[tuple[Path, tuple[int, ...]]]:
    """Labelled samples of ``split`` of multi-label ``data``, re-indexed into ``classes``."""
    name, source = resolve_loader(data)
    load = get_dataset(name).spec.load
    loaded = load(source, **options)
    samples = select_split(loaded, split, data)
    if loaded.task != "multilabel":  # one label per image is a label set of one
        samples = [(path, (label,)) for path, label in samples]
    index = {name: i for i, name in enumerate(classes)}
    for name_ in loaded.classes:
        if name_ not in index and any(loaded.classes.index(name_) in s for _, s in samples):
            raise unknown_label(name_, classes, data)
    if not samples:
        raise DataError(f"No images to evaluate in {data!r}.", "Check --data and --split.")
    return [(Path(path), tuple(sorted(index[loaded.classes[i]] for i in labels)))
            for path, labels in samples]


def evaluate_multilabel(runner: Any, data: str, split: str, batch_size: int,
                        data_options: dict[str, Any],
                        on_progress: Callable[[int], None] | None = None,
                        threshold: float | None = None) -> MultiLabelEvaluation:
    """Run ``runner`` (a multi-label model) over ``data``'s ``split``."""
    classes: list[str] = list(runner.manifest["classes"])
    samples = select_label_sets(data, data_options, split, classes)
    sets_by_path = {str(path): labels for path, labels in samples}
    paths, sets, rows, failures = [], [], [], []
    stream = predict_stream(runner, (path for path, _ in samples), batch_size=batch_size)
    for done, item in enumerate(stream, start=1):
        if isinstance(item, Failure):
            failures.append((item.path, item.reason))
        else:
            paths.append(item.path)
            sets.append(sets_by_path[item.path])
            rows.append(item.class_probs)
        if on_progress:
            on_progress(done)
    probs = np.array(rows, dtype=np.float64).reshape(len(rows), len(classes))
    thresholds = thresholds_for(runner.manifest, threshold).tolist()
    return MultiLabelEvaluation(classes, paths, multi_hot(sets, len(classes)), probs,
                                thresholds, failures)


def write_multilabel_evaluation(evaluation: MultiLabelEvaluation, out_dir: str | os.PathLike,
                                extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """metrics.json, per_class.csv (AP, threshold, F1 ...), co_occurrence.csv and .png,
    and largest_errors.csv."""
    from .report import plot_confusion

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found = evaluation.summary() | (extra or {})
    matrix = evaluation.matrix
    paths = {name: out / name for name in ("metrics.json", "per_class.csv", "co_occurrence.csv",
                                           "co_occurrence.png", "largest_errors.csv")}
    atomic_write_bytes(paths["metrics.json"], json.dumps(found, indent=2).encode())
    atomic_write_bytes(paths["per_class.csv"], _csv_bytes(
        ["class", "ap", "threshold", "precision", "recall", "f1", "support"],
        ([r["class"], "" if r["ap"] is None else f"{r['ap']:.6f}", f"{r['threshold']:.6f}",
          f"{r['precision']:.6f}", f"{r['recall']:.6f}", f"{r['f1']:.6f}", r["support"]]
         for r in found["per_class"])))
    atomic_write_bytes(paths["co_occurrence.csv"], matrix_csv(evaluation.classes, matrix))
    atomic_write_bytes(paths["largest_errors.csv"], _csv_bytes(
        ["path", "true", "predicted", "error"],
        ([r["path"], r["true"], r["predicted"], f"{r['confidence']:.6f}"]
         for r in evaluation.largest_errors())))
    plot_confusion(matrix, evaluation.classes, paths["co_occurrence.png"])
    return paths


def threshold_rows(per_class: list[dict[str, Any]]) -> list[list[Any]]:
    """The report's table: class, AP, threshold, F1 at it, support."""
    return [[r["class"], "n/a" if r["ap"] is None else f"{r['ap']:.3f}",
             f"{r['threshold']:.3f}", f"{r['f1']:.3f}", r["support"]] for r in per_class]
