"""The end of a multi-label run: metrics files and report.html from the best weights."""

from __future__ import annotations

import time
from dataclasses import asdict
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
from ..report import plot_curves, write_report

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
        config={k: v for k, v in asdict(folder.config).items() if v not in (None, {})},
        titles={"confusion": "Co-occurrence of true (rows) and predicted (columns) labels",
                "mistakes": "Largest errors (the largest gap between a probability and "
                            "the truth)"},
        tables=[("Average precision and thresholds (chosen on validation)",
                 THRESHOLD_HEADER, threshold_rows(found["per_class"]))])
