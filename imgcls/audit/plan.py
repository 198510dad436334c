"""How long each fold model of ``imgcls data audit`` trains, and whether what it learnt
is good enough for the flags to mean anything.

Epochs say little on a small folder: 10 epochs of 192 images in batches of 64 are 30
optimiser steps, which teach a network from scratch nothing, and cleanlab then ranks
the mistakes of models at chance as "label issues". So a fold model trains for a number
of *steps*: small folds get smaller batches (more steps for the same work) and as many
epochs as it takes to reach :data:`MIN_STEPS`. Options the user set are kept, with a
warning when they give too few steps.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from ..train.config import TrainConfig

MIN_STEPS = 600  # optimiser steps of each fold model, whatever the folder size
MAX_EPOCHS = 200  # a folder of a few dozen images: many epochs of one step each
SMALL_BATCH = 16
MIN_BATCHES = 8  # batches per epoch below which a fold trains in batches of SMALL_BATCH
# The audit's own default model: BatchNorm and global average pooling learn shapes from a
# few hundred images, where basic-cnn's dense layer over every position stays near chance
# or memorises them; at 64 px it is also cheaper per image than basic-cnn.
DEFAULT_MODEL = "vgg-bn"
DEFAULT_MODEL_OPTIONS: dict[str, Any] = {"width": 0.5, "depth": 3}
# cleanlab reads probabilities: a one-label fold keeps the epoch whose are best (lowest
# validation loss). Accuracy on a small validation split ties often, and ties keep the
# earlier, less trained epoch.
DEFAULT_SELECT = "loss"
# Out-of-fold accuracy must remove at least this share of the error of always answering
# the largest class before the flags are worth reading.
MIN_GAIN = 0.5


def default_train(**values: Any) -> TrainConfig:
    """The fold models' training options: the audit's model unless ``values`` choose one."""
    model_options = dict(DEFAULT_MODEL_OPTIONS) if "model" not in values else {}
    model_options |= values.pop("model_options", {})
    return TrainConfig(**({"model": DEFAULT_MODEL} | values), model_options=model_options)


@dataclass(frozen=True)
class FoldPlan:
    """What each fold model trains for; ``warning`` when the user's choice gives too few
    steps."""

    epochs: int
    batch_size: int
    images: int  # training images of a fold, after its own validation split
    warning: str | None = None

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.images / self.batch_size))

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def apply(self, config: TrainConfig) -> TrainConfig:
        return replace(config, epochs=self.epochs, batch_size=self.batch_size)

    def describe(self) -> str:
        return (f"{self.epochs} epoch{'s' if self.epochs != 1 else ''} of "
                f"{self.steps_per_epoch} batch{'es' if self.steps_per_epoch != 1 else ''} "
                f"of {self.batch_size} per fold: {self.steps} optimiser steps")


def fold_images(count: int, folds: int, val_split: float) -> int:
    """Training images of the smallest fold run: the largest fold held out, then the
    run's own validation split."""
    train = count - math.ceil(count / folds)
    return max(1, train - round(train * val_split))


def plan_folds(count: int, folds: int, config: TrainConfig,
               fixed: frozenset[str] = frozenset(), min_steps: int = MIN_STEPS) -> FoldPlan:
    """Epochs and batch size of each fold model for ``count`` audited images.

    ``fixed`` names the options the user chose (``epochs``, ``batch_size``): those are
    kept; the others are adapted so that a fold model takes at least ``min_steps`` steps
    (epochs are raised, never lowered, up to :data:`MAX_EPOCHS`).
    """
    images = fold_images(count, folds, config.val_split)
    batch = config.batch_size
    if "batch_size" not in fixed and images < MIN_BATCHES * batch:
        batch = min(batch, SMALL_BATCH)
    per_epoch = max(1, math.ceil(images / batch))
    epochs = config.epochs
    if "epochs" not in fixed:
        epochs = max(epochs, min(MAX_EPOCHS, math.ceil(min_steps / per_epoch)))
    plan = FoldPlan(epochs, batch, images)
    if plan.steps < min_steps and "epochs" in fixed:
        needed = min(MAX_EPOCHS, math.ceil(min_steps / per_epoch))
        plan = replace(plan, warning=(
            f"--epochs {epochs} gives each fold model only {plan.steps} optimiser steps "
            f"({per_epoch} batches of {batch} per epoch): models trained that briefly "
            "often stay near chance, and their mistakes are flagged as label issues. "
            f"Leave --epochs out (the audit picks {needed} here) or pass --epochs {needed}."))
    return plan


def majority_rate(labels: list[str]) -> float:
    """How often always answering the largest class is right."""
    return max(Counter(labels).values()) / len(labels) if labels else 0.0


def weak_predictions(accuracy: float, labels: list[str], cross_validated: bool) -> str | None:
    """A warning when the predictions are too poor for cleanlab's flags to mean much:
    their accuracy does not remove :data:`MIN_GAIN` of the largest class's error rate."""
    majority = majority_rate(labels)
    if accuracy >= majority + MIN_GAIN * (1.0 - majority):
        return None
    change = ("train the fold models longer (leave --epochs out, or raise it), use a "
              "stronger model (--model) or a pretrained one (a model with weights, and "
              "--config setting weights = \"imagenet\" and freeze_backbone = true), or "
              "give --probs from a model trained on other images" if cross_validated else
              "give --probs from a better model, trained on other images")
    return (f"The predictions agree with only {accuracy:.1%} of the labels, where always "
            f"answering the largest class would get {majority:.1%}: the models have not "
            "learnt the classes well enough, so most flagged images are likely their "
            f"mistakes, not wrong labels. To fix it: {change}.")
