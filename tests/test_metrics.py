"""Metrics: confusion matrix, per-class scores, macro-F1, top-k, and the DDP packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgcls.metrics import (
    MetricAccumulator,
    confusion_matrix,
    macro_f1,
    normalize_rows,
    per_class_scores,
    per_class_table,
    top_k_hits,
)

LABELS = np.array([0, 0, 0, 1, 1, 2])
PREDICTED = np.array([0, 0, 1, 1, 2, 2])


def test_confusion_matrix_counts_true_rows_predicted_columns():
    matrix = confusion_matrix(LABELS, PREDICTED, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert normalize_rows(np.array([[1, 3], [0, 0]])).tolist() == [[0.25, 0.75], [0.0, 0.0]]


def test_per_class_precision_recall_f1_support():
    scores = per_class_scores(confusion_matrix(LABELS, PREDICTED, 3))
    assert scores["precision"] == pytest.approx([1.0, 0.5, 0.5])
    assert scores["recall"] == pytest.approx([2 / 3, 0.5, 1.0])
    assert scores["f1"] == pytest.approx([0.8, 0.5, 2 / 3])
    assert scores["support"].tolist() == [3, 2, 1]
    assert macro_f1(confusion_matrix(LABELS, PREDICTED, 3)) == pytest.approx((0.8 + 0.5 + 2 / 3)
                                                                              / 3)
    rows = per_class_table(confusion_matrix(LABELS, PREDICTED, 3), ["a", "b", "c"])
    assert rows[0] == {"class": "a", "precision": 1.0, "recall": pytest.approx(2 / 3),
                       "f1": pytest.approx(0.8), "support": 3}


def test_classes_never_predicted_or_absent_do_not_divide_by_zero():
    matrix = confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 0]), 3)
    scores = per_class_scores(matrix)
    assert scores["precision"][1] == 0.0 and scores["f1"][2] == 0.0
    # Class 2 has no support: macro-F1 averages over classes 0 and 1 only.
    assert macro_f1(matrix) == pytest.approx((0.8 + 0.0) / 2)


def test_top_k_hits():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = torch.tensor([2, 1, 0])
    assert top_k_hits(scores, labels, 1) == 0
    assert top_k_hits(scores, labels, 2) == 2
    assert top_k_hits(scores, labels, 10) == 3


def test_accumulator_matches_direct_computation_and_survives_packing():
    torch.manual_seed(0)
    logits = torch.randn(50, 6)
    labels = torch.randint(0, 6, (50,))
    whole = MetricAccumulator(6, top_k=3)
    whole.update(logits, labels, 12.5)
    # Two "ranks" each see half; adding their packed tensors gives the whole.
    halves = [MetricAccumulator(6, top_k=3) for _ in range(2)]
    halves[0].update(logits[:20], labels[:20], 5.0)
    halves[1].update(logits[20:], labels[20:], 7.5)
    merged = MetricAccumulator(6, top_k=3)
    merged.load_tensor(halves[0].as_tensor() + halves[1].as_tensor())
    assert merged.compute() == whole.compute()
    result = whole.compute()
    assert result["val_acc"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert result["val_top3"] == top_k_hits(logits, labels, 3) / 50
    assert result["val_loss"] == pytest.approx(12.5 / 50)


def test_top_k_is_left_out_when_it_covers_every_class():
    metrics = MetricAccumulator(3, top_k=5)
    metrics.update(torch.eye(3), torch.arange(3), 0.0)
    assert set(metrics.compute()) == {"val_loss", "val_acc", "val_macro_f1"}
