"""Multi-label classification: label sets, their metrics and per-class thresholds.

A multi-label sample's label is a tuple of class indices (sorted, possibly
empty); a batch carries them as a multi-hot float matrix (N x classes). A model
outputs one sigmoid probability per class; a class is predicted when its
probability is at or above its threshold. Thresholds are chosen on the
validation split, each maximising its class's F1; a class without positives
there keeps ``DEFAULT_THRESHOLD`` (0.5), since no F1 can be measured for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError, DataError
from .manifest import DEFAULT_THRESHOLD, TASKS, manifest_task, manifest_thresholds
from .options import did_you_mean

LabelSet = tuple[int, ...]


def check_task(task: str | None) -> str | None:
    """``task`` if it names a task (or is None: detect it from the data)."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}.", f"Use one of: {', '.join(TASKS)}.")
    return task


def multi_hot(label_sets: Iterable[Sequence[int]], num_classes: int) -> np.ndarray:
    """float32 (N, classes): 1 where a sample carries the class."""
    sets = list(label_sets)
    matrix = np.zeros((len(sets), num_classes), dtype=np.float32)
    for row, labels in enumerate(sets):
        matrix[row, list(labels)] = 1.0
    return matrix


def split_labels(text: str, sep: str, where: str) -> list[str]:
    """``"cat;dog"`` -> ``["cat", "dog"]``; an empty cell is an empty set.

    A separator that leaves an empty name (``"cat;;dog"``, ``"cat;"``) and a label
    given twice are errors: both are usually a mistake in the file.
    """
    text = text.strip()
    if not text:
        return []
    names = [name.strip() for name in text.split(sep)]
    if any(not name for name in names):
        raise DataError(f"{where}: the labels {text!r} leave an empty name between "
                        f"separators {sep!r}.", "Remove the extra separator, or set the "
                        "separator with --data-opt sep=...")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{where}: label {repeated[0]!r} is given twice in {text!r}.",
                        "List each label of an image once.")
    return names


def unknown_label(label: str, classes: Sequence[str], where: str) -> DataError:
    """A label that is not among ``classes``, with the closest class names."""
    hint = did_you_mean(label, classes, n=1) + f"The classes are: {', '.join(classes)}."
    return DataError(f"{where}: label {label!r} is not among the classes.", hint)


def require_multiclass(manifest: dict[str, Any], what: str) -> None:
    """Commands that only understand one label per image refuse a multi-label model."""
    if manifest_task(manifest) == "multilabel":
        raise ConfigError(f"{what} does not support multi-label models.",
                          "Use a multi-class model; docs/multilabel.md lists what "
                          "multi-label models support.")


# --------------------------------------------------------------------------- deciding


def thresholds_for(manifest: dict[str, Any], override: float | None = None) -> np.ndarray:
    """The manifest's per-class thresholds, or ``override`` for every class."""
    if override is not None:
        if not 0.0 <= override <= 1.0:
            raise ConfigError(f"--threshold must be in [0, 1], got {override}.",
                              "For example: --threshold 0.5.")
        return np.full(len(manifest["classes"]), float(override))
    return np.asarray(manifest_thresholds(manifest), dtype=np.float64)


def decide(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Boolean (N, classes): the classes at or above their thresholds."""
    return np.asarray(probs) >= np.asarray(thresholds)[None, :]


def label_names(row: np.ndarray, classes: Sequence[str]) -> tuple[str, ...]:
    """The names of a decided row's classes, in class order."""
    return tuple(classes[i] for i in np.flatnonzero(row))


# --------------------------------------------------------------------------- metrics


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """AP of one class: mean precision at each positive, ranked by score. NaN without
    positives (undefined)."""
    positives = targets > 0.5
    if not positives.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positives[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def best_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
    """The threshold maximising F1 of one class (``DEFAULT_THRESHOLD`` without positives).

    Cuts fall between distinct scores; the threshold is the midpoint between the
    lowest score kept and the next lower one, so it does not sit on a sample.
    """
    positives = targets > 0.5
    if not positives.any():
        return DEFAULT_THRESHOLD
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positives[order]
    true_pos = np.cumsum(hits)
    kept = np.arange(1, len(hits) + 1)
    last_of_tie = np.append(ranked[1:] < ranked[:-1], True)  # a cut cannot split a tie
    f1 = np.where(last_of_tie, 2 * true_pos / (kept + positives.sum()), -1.0)
    cut = int(np.argmax(f1))
    below = ranked[cut + 1] if cut + 1 < len(ranked) else max(0.0, ranked[cut] - 1e-3)
    return float((ranked[cut] + below) / 2)


def choose_thresholds(probs: np.ndarray, targets: np.ndarray) -> list[float]:
    """One F1-maximising threshold per class (see :func:`best_threshold`)."""
    return [best_threshold(probs[:, c], targets[:, c]) for c in range(probs.shape[1])]


def _f1(true_pos: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    both = predicted + support
    return np.divide(2 * true_pos, both, out=np.zeros(true_pos.shape, np.float64),
                     where=both > 0)


def summary(probs: np.ndarray, targets: np.ndarray, thresholds: Sequence[float],
            classes: Sequence[str]) -> dict[str, Any]:
    """mAP (macro, over classes with positives), per-class AP/precision/recall/F1 at
    ``thresholds``, micro and macro F1, exact match, BCE loss; JSON-ready."""
    targets = targets > 0.5
    chosen = decide(probs, np.asarray(thresholds))
    true_pos = (chosen & targets).sum(0).astype(np.float64)
    predicted, support = chosen.sum(0).astype(np.float64), targets.sum(0).astype(np.float64)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros_like(true_pos), where=support > 0)
    f1 = _f1(true_pos, predicted, support)
    ap = np.array([average_precision(probs[:, c], targets[:, c]) for c in range(len(classes))])
    present = support > 0
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    loss = -(targets * np.log(clipped) + ~targets * np.log(1 - clipped)).mean() if len(
        probs) else 0.0
    return {
        "task": "multilabel", "images": len(probs),
        "map": float(np.nanmean(ap)) if present.any() else 0.0,
        "exact_match": float((chosen == targets).all(1).mean()) if len(probs) else 0.0,
        "micro_f1": float(_f1(true_pos.sum(), predicted.sum(), support.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "loss": float(loss),
        "without_labels": int((~targets.any(1)).sum()),
        "per_class": [{"class": name, "ap": None if np.isnan(ap[i]) else float(ap[i]),
                       "threshold": float(thresholds[i]), "precision": float(precision[i]),
                       "recall": float(recall[i]), "f1": float(f1[i]),
                       "support": int(support[i])} for i, name in enumerate(classes)],
    }


def co_occurrence(targets: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """``matrix[i, j]``: images carrying class i whose predicted set holds class j."""
    return (targets > 0.5).astype(np.int64).T @ chosen.astype(np.int64)
