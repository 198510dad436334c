"""Classification metrics: top-k accuracy, confusion matrix, per-class precision/recall/F1.

Everything is computed from a confusion matrix plus top-k hit counts, so
distributed ranks can add their partial counts and get exact global metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # report.py draws from these numbers without torch
    import torch


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts, int64, shape (num_classes, num_classes)."""
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(predicted, dtype=np.int64)
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (recall view); rows of zeros stay zero."""
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64),
                     where=totals > 0)


def top_k_hits(scores: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """How many rows have their label among the ``k`` highest scores."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return int((top == labels[:, None]).any(dim=1).sum().item())


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where undefined (no predictions)."""
    matrix = matrix.astype(np.float64)
    true_pos = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros_like(true_pos), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(true_pos), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the labels (support > 0)."""
    scores = per_class_scores(matrix)
    present = scores["support"] > 0
    return float(scores["f1"][present].mean()) if present.any() else 0.0


@dataclass
class MetricAccumulator:
    """Running loss sum, top-k hits and confusion counts over batches of logits."""

    num_classes: int
    top_k: int = 5
    loss_sum: float = 0.0
    seen: int = 0
    top_k_correct: int = 0
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    @property
    def k(self) -> int:
        return min(self.top_k, self.num_classes)

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: float) -> None:
        """Add a batch: ``loss_sum`` is the batch's summed (not mean) loss."""
        predicted = logits.argmax(1)
        self.loss_sum += loss_sum
        self.seen += len(labels)
        self.top_k_correct += top_k_hits(logits, labels, self.k)
        self.matrix += confusion_matrix(labels.cpu().numpy(), predicted.cpu().numpy(),
                                        self.num_classes)

    def as_tensor(self) -> torch.Tensor:
        """Counts packed in one float64 tensor, for an all-reduce across ranks."""
        import torch

        head = torch.tensor([self.loss_sum, self.seen, self.top_k_correct], dtype=torch.float64)
        return torch.cat([head, torch.from_numpy(self.matrix.astype(np.float64)).flatten()])

    def load_tensor(self, packed: torch.Tensor) -> None:
        import torch

        values = packed.to(torch.float64).cpu()
        self.loss_sum = float(values[0])
        self.seen = round(float(values[1]))
        self.top_k_correct = round(float(values[2]))
        self.matrix = values[3:].round().to(torch.int64).numpy().reshape(self.matrix.shape)

    def compute(self, prefix: str = "val_") -> dict[str, float]:
        """Loss, top-1 (and top-k) accuracy and macro-F1, keyed ``val_loss``, ``val_acc`` ..."""
        seen = max(self.seen, 1)
        result = {f"{prefix}loss": self.loss_sum / seen,
                  f"{prefix}acc": float(np.trace(self.matrix)) / seen}
        if self.k < self.num_classes:  # top-k over all classes is always 100%
            result[f"{prefix}top{self.k}"] = self.top_k_correct / seen
        result[f"{prefix}macro_f1"] = macro_f1(self.matrix)
        return result


def per_class_table(matrix: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """One row per class: name, precision, recall, f1, support."""
    scores = per_class_scores(matrix)
    return [{"class": name, "precision": float(scores["precision"][i]),
             "recall": float(scores["recall"][i]), "f1": float(scores["f1"][i]),
             "support": int(scores["support"][i])} for i, name in enumerate(classes)]
