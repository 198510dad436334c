"""The end of a multi-label run: metrics files and report.html from the best weights."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..evaluate_multilabel import (
    MultiLabelEvaluation,
    threshold_rows,
    write_multilabel_evaluation,
)
from ..manifest import manifest_thresholds
from ..report import new_figure, plot_curves, png_bytes, write_report

THRESHOLD_HEADER = ["class", "AP", "threshold", "F1 at threshold", "support"]


def finish_multilabel(folder: Any, manifest: dict[str, Any], model: nn.Module,
                      probs: np.ndarray, history: list[dict[str, float]],
                      device: torch.device) -> Path:
    """Evaluate the best weights on the validation split at the stored thresholds; write
    metrics.json, per_class.csv, co_occurrence.csv/.png, largest_errors.csv, report.html."""
    val_images = folder.images[1]
    evaluation = MultiLabelEvaluation(folder.dataset.classes,
                                      [str(p) for p in val_images.paths],
                                      np.asarray(val_images.labels), probs,
                                      manifest_thresholds(manifest))
    run_dir = folder.run_dir
    write_multilabel_evaluation(evaluation, run_dir)
    curves = plot_curves(history, run_dir / "curves.png")
    found = evaluation.summary()
    headline = {"model": folder.spec.name, "data": folder.config.data, "task": "multilabel",
                "epochs run": str(len(history)), "mAP": f"{found['map']:.3f}",
                "exact match": f"{found['exact_match']:.2%}",
                "micro-F1": f"{found['micro_f1']:.3f}", "macro-F1": f"{found['macro_f1']:.3f}",
                "train time": f"{time.perf_counter() - folder.started:.0f} s"}
    errors = [row | {"true": row["true"] or "none", "predicted": row["predicted"] or "none"}
              for row in evaluation.largest_errors()]
    return write_report(
        run_dir / "report.html", title=f"imgcls run {run_dir.name}", headline=headline,
        curves_png=curves.read_bytes(),
        confusion_png=(run_dir / "co_occurrence.png").read_bytes(),
        per_class=found["per_class"], mistakes=errors,
        config=folder.report_options(device),
        titles={"confusion": "Co-occurrence of true (rows) and predicted (columns) labels",
                "mistakes": "Largest errors (the largest gap between a probability and "
                            "the truth)"},
        tables=[("Average precision and thresholds (chosen on validation)",
                 THRESHOLD_HEADER, threshold_rows(found["per_class"]))],
        figures=[("Precision-recall curves per class (dot: the class's threshold)",
                  plot_pr_curves(evaluation))])


def pr_curve(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each image, ranked by score (a class with positives)."""
    hits = (targets > 0.5)[np.argsort(-scores, kind="stable")]
    true_pos = np.cumsum(hits)
    return true_pos / max(hits.sum(), 1), true_pos / np.arange(1, len(hits) + 1)


def plot_pr_curves(evaluation: MultiLabelEvaluation) -> bytes:
    """Every class's precision-recall curve in one PNG, each with its threshold marked."""
    figure = new_figure(6, 4.5)
    axes = figure.subplots()
    for c, name in enumerate(evaluation.classes):
        scores, targets = evaluation.probs[:, c], evaluation.targets[:, c]
        if not (targets > 0.5).any():
            continue
        recall, precision = pr_curve(scores, targets)
        line = axes.plot(recall, precision, label=name)[0]
        kept = scores >= evaluation.thresholds[c]
        if kept.any():
            axes.plot([recall[kept.sum() - 1]], [precision[kept.sum() - 1]], "o",
                      color=line.get_color())
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return png_bytes(figure)
