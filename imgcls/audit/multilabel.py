"""``imgcls data audit`` on multi-label data: label sets that the predictions contradict.

The probabilities are out-of-fold sigmoids, as for one label per image (see
:mod:`imgcls.audit.run`): the images are dealt into K folds, stratified by label set;
each fold's model trains on the others with the multi-label loss (keeping the epoch
of best validation mAP) and predicts the held-out fold. ``--probs`` gives them from
a file instead (``path,<class>...``: each a probability from 0 to 1, rows need not
sum to 1).

cleanlab's multi-label API then scores each image: a per-class label quality (the
probability of the class if it is given, one minus it if not) aggregated over the
classes, the worst weighing most; ``find_label_issues`` flags the images where any
class looks wrongly annotated, lowest quality first. The suggested label set holds
the classes at or above a per-class threshold chosen on the out-of-fold
probabilities (each maximising its class's F1 against the given labels, as training
does on validation); a suggested class not given looks *missing*, a given class not
suggested looks *extra*.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data.splits import select_split
from ..errors import DataError, require_extra
from ..io import atomic_write_bytes
from ..multilabel import choose_thresholds, decide, label_names, multi_hot, summary
from ..specs import LoadedDataset
from ..train.progress import Reporter
from .duplicates import DuplicateGroup, Entry
from .run import (
    AuditOptions,
    AuditResult,
    LabelIssue,
    file_probs,
    planned,
    predict_fold,
    stratified_folds,
)

# A fold's CSV joins a label set with the first of these that no class name holds.
SEPARATORS = (";", "|", "+", "^", "~", "#")
NONE = "(none)"  # how reports show an empty label set


@dataclass(frozen=True)
class MultiLabelIssue(LabelIssue):
    """An image whose label set the predictions contradict; ``given`` and ``suggested``
    are the sets joined with ``;`` (empty for no label)."""

    given_labels: tuple[str, ...] = ()
    suggested_labels: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # suggested, not given
    extra: tuple[str, ...] = ()  # given, not suggested


@dataclass
class MultiLabelAuditResult(AuditResult):
    """An audit of label sets; ``label_sets`` are the given sets of ``entries``."""

    label_sets: list[tuple[int, ...]] = field(default_factory=list)
    audited_sets: list[tuple[int, ...]] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    mean_ap: float = 0.0  # out-of-fold mAP against the given labels
    task: str = "multilabel"

    @property
    def map_name(self) -> str:
        """What ``mean_ap`` measures: out-of-fold probabilities, or a --probs file's."""
        return "out-of-fold mAP" if self.fold_accuracy else "mAP of the probabilities"

    @property
    def accuracy(self) -> float:
        """How often the suggested label set is the given one (exact match)."""
        if not self.audited_sets:
            return 0.0
        given = multi_hot(self.audited_sets, len(self.classes)) > 0.5
        return float((decide(self.probs, np.asarray(self.thresholds)) == given).all(1).mean())


def joined(names: Sequence[str]) -> str:
    return ";".join(names)


# --------------------------------------------------------------------------- data


def ml_entries(loaded: LoadedDataset, data: str, split: str
               ) -> tuple[list[Entry], list[tuple[int, ...]], list[int]]:
    """Every image (train, then val) as an Entry whose label is its joined set, the
    sets, and the positions of the images of ``split``."""
    entries: list[Entry] = []
    sets: list[tuple[int, ...]] = []
    for name, samples in (("train", loaded.train), ("val", loaded.val or [])):
        for path, labels in samples:
            entries.append(Entry(Path(path), name, joined([loaded.classes[i]
                                                           for i in labels])))
            sets.append(tuple(labels))
    wanted = {str(path) for path, _ in select_split(loaded, split, data)}
    audited = [i for i, entry in enumerate(entries) if str(entry.path) in wanted]
    if not audited:
        raise DataError(f"No images to audit in {data!r}.", "Check --data and --split.")
    return entries, sets, audited


def fold_separator(classes: list[str]) -> str:
    """A label separator that no class name holds."""
    for sep in SEPARATORS:
        if not any(sep in name for name in classes):
            return sep
    raise DataError(f"Every label separator ({' '.join(SEPARATORS)}) occurs in a class name.",
                    "Rename the classes that hold these characters.")


def write_fold_csv(path: Path, entries: list[Entry], sets: list[tuple[int, ...]],
                   classes: list[str], sep: str) -> Path:
    """A path,labels CSV (labels joined with ``sep``, possibly empty) for fit()."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "labels"])
    writer.writerows([os.path.abspath(entry.path), sep.join(classes[i] for i in labels)]
                     for entry, labels in zip(entries, sets, strict=True))
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8", "surrogateescape"))
    return path


# --------------------------------------------------------------------------- probabilities


def cross_validated_probs(audited: list[Entry], sets: list[tuple[int, ...]],
                          classes: list[str], options: AuditOptions,
                          reporter: Reporter | None = None,
                          on_fold: Callable[[int, int, float], None] | None = None
                          ) -> tuple[np.ndarray, list[float], list[tuple[Path, str]]]:
    """Out-of-fold sigmoid probabilities (NaN rows for unreadable images), each fold's
    exact match at 0.5 on its held-out images, and the images that could not be decoded."""
    work = Path(options.out_dir) / "folds"
    fold_of = stratified_folds([",".join(map(str, labels)) for labels in sets], options.folds,
                               options.train.seed)
    sep = fold_separator(classes)
    # Exact match picks epochs poorly when most label sets are partly right: use mAP.
    metric = "map" if options.train.select_metric == "accuracy" else options.train.select_metric
    probs = np.full((len(audited), len(classes)), np.nan)
    exact: list[float] = []
    unreadable: list[tuple[Path, str]] = []
    for fold in range(options.folds):
        held = np.flatnonzero(fold_of == fold)
        train = np.flatnonzero(fold_of != fold)
        csv_path = write_fold_csv(work / f"fold-{fold + 1}.csv", [audited[i] for i in train],
                                  [sets[i] for i in train], classes, sep)
        config = replace(options.train, data=str(csv_path), data_options={"sep": sep},
                         task="multilabel", select_metric=metric, out=str(work),
                         name=f"fold-{fold + 1}", exist_ok=True, report=False)
        held_probs, skipped = predict_fold(config, [audited[i] for i in held], classes,
                                           reporter)
        probs[held] = held_probs
        unreadable += skipped
        ok = ~np.isnan(held_probs).any(1)
        given = multi_hot([sets[i] for i in held], len(classes)) > 0.5
        right = (decide(held_probs[ok], np.full(len(classes), 0.5)) == given[ok]).all(1)
        exact.append(float(right.mean()) if ok.any() else 0.0)
        if on_fold:
            on_fold(fold + 1, options.folds, exact[-1])
    return probs, exact, unreadable


# --------------------------------------------------------------------------- cleanlab


def find_issues(audited: list[Entry], sets: list[tuple[int, ...]], probs: np.ndarray,
                classes: list[str], thresholds: np.ndarray
                ) -> tuple[np.ndarray, list[MultiLabelIssue], list[str]]:
    """cleanlab's label quality of each image, the flagged ones ranked (lowest quality
    first) with their suggested, missing and extra labels, and cleanlab's warnings."""
    require_extra("cleanlab")
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    given = multi_hot(sets, len(classes)) > 0.5
    if given.all(0).any():  # cleanlab's one-vs-rest needs both sides of every class
        name = classes[int(np.flatnonzero(given.all(0))[0])]
        raise DataError(f"Every audited image is given {name!r}, so no image shows what its "
                        "absence looks like.", "Audit more images (--split all), or leave "
                        f"{name!r} out of the labels.")
    labels = [list(labels) for labels in sets]
    probs = np.clip(probs, 0.0, 1.0)  # a file's six decimals may step just outside
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = get_label_quality_scores(labels, probs, method="self_confidence")
        ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence",
                                   n_jobs=1)
    chosen = decide(probs, thresholds)
    issues = [_issue(audited[i], given[i], chosen[i], classes, float(scores[i]))
              for i in ranked]
    notes = sorted({f"cleanlab: {warning.message}" for warning in caught})
    return scores, issues, notes


def _issue(entry: Entry, given: np.ndarray, chosen: np.ndarray, classes: list[str],
           score: float) -> MultiLabelIssue:
    given_names, chosen_names = label_names(given, classes), label_names(chosen, classes)
    return MultiLabelIssue(entry.path, joined(given_names), joined(chosen_names), score,
                           given_names, chosen_names, label_names(chosen & ~given, classes),
                           label_names(given & ~chosen, classes))


def threshold_note(classes: list[str], thresholds: Sequence[float]) -> str:
    shown = ", ".join(f"{name} {value:.2f}" for name, value in
                      zip(classes[:12], thresholds, strict=False))
    more = f" (and {len(classes) - 12} more)" if len(classes) > 12 else ""
    return ("suggested labels: each class at or above its threshold, chosen on the "
            f"out-of-fold probabilities for F1: {shown}{more}")


def audit_multilabel(options: AuditOptions, loaded: LoadedDataset,
                     reporter: Reporter | None = None,
                     on_fold: Callable[[int, int, float], None] | None = None,
                     on_hash: Callable[[int, int], None] | None = None,
                     on_plan: Callable[[str, str | None], None] | None = None
                     ) -> MultiLabelAuditResult:
    """The audit of label sets (see the module docstring); ``loaded`` is the data."""
    classes = list(loaded.classes)
    if len(classes) < 2:
        raise DataError(f"Found {len(classes)} class in {options.data!r}; an audit compares "
                        "labels, so it needs at least 2.", "Label the images with 2 or more "
                        "classes.")
    entries, sets, positions = ml_entries(loaded, options.data, options.split)
    audited = [entries[i] for i in positions]
    audited_sets = [sets[i] for i in positions]
    notes: list[str] = []
    unreadable: list[tuple[Path, str]] = []
    exact: list[float] = []
    # Enough steps; the epoch kept is chosen below (mAP unless chosen).
    options, method, plan_warnings = planned(options, len(audited), select=None)
    if on_plan:
        on_plan(method, plan_warnings[0] if plan_warnings else None)
    if options.probs is not None:
        probs, notes = file_probs(options, classes, entries, audited, multilabel=True)
    else:
        probs, exact, unreadable = cross_validated_probs(audited, audited_sets, classes,
                                                         options, reporter, on_fold)
    usable = ~np.isnan(probs).any(1)
    if usable.sum() < 2:
        raise DataError("Fewer than 2 images could be audited.", "Check the data with "
                        f"imgcls data check --data {options.data}.")
    kept = [entry for entry, ok in zip(audited, usable, strict=True) if ok]
    kept_sets = [labels for labels, ok in zip(audited_sets, usable, strict=True) if ok]
    probs = probs[usable]
    targets = multi_hot(kept_sets, len(classes))
    thresholds = np.asarray(choose_thresholds(probs, targets))
    scores, issues, cleanlab_notes = find_issues(kept, kept_sets, probs, classes, thresholds)
    groups, failures = _duplicates(entries, options, on_hash)
    seen = {str(path) for path, _ in unreadable}
    unreadable += [item for item in failures if str(item[0]) not in seen]
    mean_ap = summary(probs, targets, thresholds, classes)["map"]
    return MultiLabelAuditResult(
        loaded.source or options.data, classes, entries, kept, probs, scores, issues, groups,
        unreadable, [*notes, threshold_note(classes, thresholds), *cleanlab_notes],
        method, exact, options.duplicates, plan_warnings, label_sets=sets,
        audited_sets=kept_sets, thresholds=[float(t) for t in thresholds], mean_ap=mean_ap)


def _duplicates(entries: list[Entry], options: AuditOptions,
                on_hash: Callable[[int, int], None] | None
                ) -> tuple[list[DuplicateGroup], list[tuple[Path, str]]]:
    from .duplicates import near_duplicates

    if not options.duplicates:
        return [], []
    return near_duplicates(entries, options.max_distance, options.workers, on_hash)
