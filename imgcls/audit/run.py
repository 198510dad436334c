"""``imgcls data audit``: rank likely wrong labels with cleanlab, find near-duplicates.

Label issues need predicted probabilities that the image's own label did not train:

- cross-validated (the default): the images are dealt into K stratified, seeded
  folds; for each fold a real ``fit()`` learns from the other K-1 (it holds out its
  own validation split from them to pick the best epoch) for enough optimiser steps
  whatever the folder size (:mod:`imgcls.audit.plan`), and its best weights
  predict the held-out fold, decoded with the checkpoint's Preprocess as
  ``imgcls eval`` does. Every image is predicted once, by a model that never saw it;
- or from a file (``--probs``), e.g. ``imgcls infer --top-k N`` of a model trained
  on other images (see :mod:`imgcls.audit.probs`).

``cleanlab.filter.find_label_issues`` then flags the images whose given label the
probabilities contradict, ranked by cleanlab's label quality score (self-confidence:
the probability of the given label; lowest first). The suggested label is the most
probable class. Near-duplicates come from :mod:`imgcls.audit.duplicates`. When the
predictions are barely better than always answering the largest class, the result
carries a warning: the flags are then mostly the models' own mistakes.
"""

from __future__ import annotations

import csv
import io
import os
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import call_loader, resolve_loader
from ..data.splits import check_split, select_split
from ..errors import ConfigError, DataError, require_extra
from ..io import atomic_write_bytes
from ..specs import LoadedDataset
from ..train.config import TrainConfig
from ..train.progress import Reporter
from .duplicates import DEFAULT_MAX_DISTANCE, DuplicateGroup, Entry, check_distance
from .plan import (
    DEFAULT_SELECT,
    MIN_STEPS,
    FoldPlan,
    default_train,
    plan_folds,
    weak_predictions,
)

DEFAULT_FOLDS = 5
MAX_FOLDS = 20


@dataclass
class AuditOptions:
    """What to audit and how; ``train`` holds the options of every fold's training.

    ``fixed`` names the options of ``train`` the user chose: of ``epochs`` and
    ``batch_size``, the others are adapted so that each fold model takes at least
    ``min_steps`` steps; a one-label audit's ``select_metric`` becomes ``loss``.
    """

    data: str
    data_options: dict[str, Any] = field(default_factory=dict)
    split: str = "all"
    folds: int = DEFAULT_FOLDS
    train: TrainConfig = field(default_factory=default_train)
    probs: str | None = None
    out_dir: str = "audit"
    duplicates: bool = True
    max_distance: int = DEFAULT_MAX_DISTANCE
    workers: int | None = None
    fixed: frozenset[str] = frozenset()
    min_steps: int = MIN_STEPS

    def describe(self, plan: FoldPlan | None = None) -> str:
        """Where the probabilities come from, in words."""
        if self.probs is not None:
            return f"probabilities from {self.probs}"
        options = ", ".join(f"{k} {v}" for k, v in self.train.model_options.items())
        model = f"{self.train.model} ({options})" if options else self.train.model
        epochs = self.train.epochs
        training = (plan.describe() if plan is not None else
                    f"{epochs} epoch{'s' if epochs != 1 else ''} per fold")
        return f"{self.folds}-fold cross-validation of {model}, {training}"

    def validate(self) -> None:
        check_split(self.split)
        if self.probs is None and not 2 <= self.folds <= MAX_FOLDS:
            raise ConfigError(f"--folds must be 2 to {MAX_FOLDS}, got {self.folds}.",
                              f"For example: --folds {DEFAULT_FOLDS}.")
        if self.duplicates:
            check_distance(self.max_distance)


@dataclass(frozen=True)
class LabelIssue:
    """An image whose given label the predictions contradict."""

    path: Path
    given: str
    suggested: str
    score: float  # cleanlab's label quality: 0 (surely wrong) to 1


@dataclass
class AuditResult:
    """What the audit found; ``entries`` is the whole data set (every split)."""

    source: str
    classes: list[str]
    entries: list[Entry]
    audited: list[Entry]
    probs: np.ndarray  # one row per audited entry, columns in the order of classes
    scores: np.ndarray  # label quality per audited entry
    issues: list[LabelIssue]  # most suspicious first
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    method: str = ""
    fold_accuracy: list[float] = field(default_factory=list)
    searched_duplicates: bool = False
    warnings: list[str] = field(default_factory=list)  # shown first: the flags may mislead

    @property
    def accuracy(self) -> float:
        """How often the most probable class is the given label."""
        index = {name: i for i, name in enumerate(self.classes)}
        given = np.array([index[entry.label] for entry in self.audited])
        return float((self.probs.argmax(1) == given).mean()) if len(given) else 0.0


# --------------------------------------------------------------------------- data


def load_entries(data: str, options: dict[str, Any], loaded: LoadedDataset | None = None
                 ) -> tuple[str, list[str], list[Entry]]:
    """Every image of ``data`` (train, then val) with its split and class name."""
    loaded = loaded or call_loader(*resolve_loader(data), options)
    if loaded.task == "multilabel":
        raise DataError(f"{data!r} is multi-label; this audit checks one label per image.",
                        "Use imgcls.audit.audit, which audits multi-label data too.")
    if len(loaded.classes) < 2:
        raise DataError(f"Found {len(loaded.classes)} class in {data!r}; an audit compares "
                        "labels, so it needs at least 2.", "Put each class in its own folder.")
    entries = [Entry(Path(path), split, loaded.classes[label])
               for split, samples in (("train", loaded.train), ("val", loaded.val or []))
               for path, label in samples]
    return loaded.source or data, list(loaded.classes), entries


def select_entries(data: str, options: dict[str, Any], split: str,
                   loaded: LoadedDataset | None = None
                   ) -> tuple[str, list[str], list[Entry], list[Entry]]:
    """(source, classes, every entry, the entries of ``split``)."""
    source, classes, entries = load_entries(data, options, loaded)
    index = {name: i for i, name in enumerate(classes)}
    as_loaded = LoadedDataset(classes, [(e.path, index[e.label]) for e in entries
                                        if e.split == "train"],
                              [(e.path, index[e.label]) for e in entries if e.split == "val"]
                              or None)
    wanted = {str(path) for path, _ in select_split(as_loaded, split, data)}
    audited = [entry for entry in entries if str(entry.path) in wanted]
    if not audited:
        raise DataError(f"No images to audit in {data!r}.", "Check --data and --split.")
    return source, classes, entries, audited


def stratified_folds(labels: list[str], folds: int, seed: int) -> np.ndarray:
    """The fold (0 to ``folds`` - 1) of each image: each class dealt round-robin after a
    seeded shuffle, so every fold holds about 1/folds of every class."""
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    rng = random.Random(seed)
    fold_of = np.zeros(len(labels), dtype=np.int64)
    offset = 0
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        for position, index in enumerate(members):
            fold_of[index] = (offset + position) % folds
        offset += len(members)  # rotate, so small classes do not all start in fold 0
    return fold_of


# --------------------------------------------------------------------------- probabilities


def write_fold_csv(path: Path, entries: list[Entry]) -> Path:
    """A path,label CSV of ``entries`` (absolute paths) for fit()'s csv loader."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label"])
    writer.writerows([os.path.abspath(entry.path), entry.label] for entry in entries)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8", "surrogateescape"))
    return path


def cross_validated_probs(audited: list[Entry], classes: list[str], options: AuditOptions,
                          reporter: Reporter | None = None,
                          on_fold: Callable[[int, int, float], None] | None = None
                          ) -> tuple[np.ndarray, list[float], list[tuple[Path, str]]]:
    """Out-of-fold probabilities (NaN rows for unreadable images), each fold's accuracy on
    its held-out images, and the images that could not be decoded."""
    work = Path(options.out_dir) / "folds"
    fold_of = stratified_folds([entry.label for entry in audited], options.folds,
                               options.train.seed)
    probs = np.full((len(audited), len(classes)), np.nan)
    accuracy: list[float] = []
    unreadable: list[tuple[Path, str]] = []
    for fold in range(options.folds):
        held = np.flatnonzero(fold_of == fold)
        train = [audited[i] for i in np.flatnonzero(fold_of != fold)]
        csv_path = write_fold_csv(work / f"fold-{fold + 1}.csv", train)
        config = replace(options.train, data=str(csv_path), data_options={}, out=str(work),
                         name=f"fold-{fold + 1}", exist_ok=True, report=False)
        held_probs, skipped = predict_fold(config, [audited[i] for i in held], classes,
                                           reporter)
        probs[held] = held_probs
        unreadable += skipped
        given = np.array([classes.index(audited[i].label) for i in held])
        ok = ~np.isnan(held_probs).any(1)
        accuracy.append(float((held_probs[ok].argmax(1) == given[ok]).mean()) if ok.any()
                        else 0.0)
        if on_fold:
            on_fold(fold + 1, options.folds, accuracy[-1])
    return probs, accuracy, unreadable


def predict_fold(config: TrainConfig, held: list[Entry], classes: list[str],
                 reporter: Reporter | None) -> tuple[np.ndarray, list[tuple[Path, str]]]:
    """Train on ``config.data``; probabilities of ``held`` (NaN rows where unreadable)."""
    from ..checkpoint import load_checkpoint
    from ..data.cache import decode_samples
    from ..evaluate import predict_decoded
    from ..system import resolve_device
    from ..train.loop import fit

    result = fit(config, reporter)
    checkpoint = load_checkpoint(result.best_path)
    device = resolve_device(config.device)
    images = decode_samples([(entry.path, 0) for entry in held], checkpoint.preprocess,
                            workers=None)
    predicted = predict_decoded(checkpoint.model.to(device), images, checkpoint.preprocess,
                                device, batch_size=max(config.batch_size, 64),
                                multilabel=config.task == "multilabel")
    # The fold's classes are those of its training rows, sorted by its loader: by name.
    columns = {name: i for i, name in enumerate(checkpoint.classes)}
    rows = {str(path): i for i, path in enumerate(images.paths)}
    probs = np.full((len(held), len(classes)), np.nan)
    for position, entry in enumerate(held):
        if str(entry.path) in rows:
            row = predicted[rows[str(entry.path)]]
            probs[position] = [row[columns[name]] if name in columns else 0.0
                               for name in classes]
    return probs, list(images.skipped)


def file_probs(options: AuditOptions, classes: list[str], entries: list[Entry],
               audited: list[Entry], multilabel: bool = False) -> tuple[np.ndarray, list[str]]:
    """Probabilities from ``options.probs`` for ``audited`` (NaN rows where absent), notes."""
    from .probs import read_probs

    given = read_probs(options.probs, classes, multilabel)
    known = {os.path.realpath(entry.path) for entry in entries}
    unknown = [path for path in given if path not in known]
    if unknown:
        raise DataError(f"{len(unknown)} images of {options.probs} are not in "
                        f"{options.data!r}, e.g. {unknown[0]}.",
                        "Give the probabilities of this data's images; paths are matched "
                        "after resolving them from the current folder, so run imgcls infer "
                        "from the same folder, or with absolute paths.")
    probs = np.array([given.get(os.path.realpath(entry.path), np.full(len(classes), np.nan))
                      for entry in audited]).reshape(len(audited), len(classes))
    missing = int(np.isnan(probs).any(1).sum())
    if missing == len(audited):
        raise DataError(f"{options.probs} has no probabilities for the {options.split} images "
                        f"of {options.data!r}.", "Check --split, or run imgcls infer on them.")
    notes = [f"{missing} of {len(audited)} images have no probabilities in {options.probs}; "
             "they are not audited"] if missing else []
    return probs, notes


# --------------------------------------------------------------------------- cleanlab


def find_issues(audited: list[Entry], probs: np.ndarray, classes: list[str]
                ) -> tuple[np.ndarray, list[LabelIssue], list[str]]:
    """Label quality of each image, the flagged ones ranked (lowest quality first), and
    cleanlab's warnings as notes (e.g. a class with too few images to judge)."""
    require_extra("cleanlab")
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[entry.label] for entry in audited], dtype=np.int64)
    # Renormalise away the rounding of a file's six decimals; cleanlab wants exact sums.
    probs = probs / probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = get_label_quality_scores(labels, probs, method="self_confidence")
        ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence",
                                   n_jobs=1)
    issues = [LabelIssue(audited[i].path, audited[i].label, classes[int(probs[i].argmax())],
                         float(scores[i])) for i in ranked]
    notes = sorted({f"cleanlab: {warning.message}" for warning in caught})
    return scores, issues, notes


def audit(options: AuditOptions, reporter: Reporter | None = None,
          on_fold: Callable[[int, int, float], None] | None = None,
          on_hash: Callable[[int, int], None] | None = None,
          loaded: LoadedDataset | None = None,
          on_plan: Callable[[str, str | None], None] | None = None) -> AuditResult:
    """Run the audit (see the module docstring) of ``loaded``, the data if given already;
    nothing is written but the folds' runs. :func:`imgcls.audit.task.audit` picks this
    or the multi-label audit. ``on_plan`` hears how the probabilities are made, and a
    warning, before any training."""
    from .duplicates import near_duplicates

    require_extra("cleanlab")  # before the folds train, not after
    options.validate()
    source, classes, entries, audited = select_entries(options.data, options.data_options,
                                                       options.split, loaded)
    notes: list[str] = []
    unreadable: list[tuple[Path, str]] = []
    fold_accuracy: list[float] = []
    options, method, plan_warnings = planned(options, len(audited))
    if on_plan:
        on_plan(method, plan_warnings[0] if plan_warnings else None)
    if options.probs is not None:
        probs, notes = file_probs(options, classes, entries, audited)
    else:
        probs, fold_accuracy, unreadable = cross_validated_probs(audited, classes, options,
                                                                 reporter, on_fold)
    usable = ~np.isnan(probs).any(1)
    kept = [entry for entry, ok in zip(audited, usable, strict=True) if ok]
    if len(kept) < 2:
        raise DataError("Fewer than 2 images could be audited.", "Check the data with "
                        f"imgcls data check --data {options.data}.")
    scores, issues, cleanlab_notes = find_issues(kept, probs[usable], classes)
    groups: list[DuplicateGroup] = []
    if options.duplicates:
        groups, failures = near_duplicates(entries, options.max_distance, options.workers,
                                           on_hash)
        seen = {str(path) for path, _ in unreadable}
        unreadable += [item for item in failures if str(item[0]) not in seen]
    result = AuditResult(source, classes, entries, kept, probs[usable], scores, issues,
                         groups, unreadable, notes + cleanlab_notes, method, fold_accuracy,
                         options.duplicates, plan_warnings)
    weak = weak_predictions(result.accuracy, [entry.label for entry in kept],
                            options.probs is None)
    result.warnings += [weak] if weak else []
    return result


def planned(options: AuditOptions, count: int, select: str | None = DEFAULT_SELECT
            ) -> tuple[AuditOptions, str, list[str]]:
    """The options with each fold's epochs and batch size for ``count`` images (and
    ``select`` as the metric that keeps an epoch, unless chosen), the method in words,
    and a warning when the user's choice gives too few steps."""
    if options.probs is not None:
        return options, options.describe(), []
    plan = plan_folds(count, options.folds, options.train, options.fixed, options.min_steps)
    train = plan.apply(options.train)
    if select is not None and "select_metric" not in options.fixed:
        train = replace(train, select_metric=select)
    options = replace(options, train=train)
    return options, options.describe(plan), [plan.warning] if plan.warning else []
