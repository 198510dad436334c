"""The recipe ``imgcls train --time BUDGET`` picks when no ``--model`` is named.

The tutorial's basic-cnn with Adam is the default for a fixed epoch count. Given only a
time budget, a user wants the most accurate model that budget can train, and that is a
small residual network trained with SGD and a one-cycle schedule, at an input size that
grows with the budget: more pixels pay only when there is time for enough epochs to use
them. A long budget also regularises more (colour jitter, CutMix, an EMA of the
weights, as the best fixed-epoch recipe in docs/training.md): on 2 CPU cores, 40 minutes
of the short-budget recipe reached 97% on its training photos and scored lower on
held-out ones than 20 minutes did (``benchmarks/peer_ultralytics.py``). Options the user
gives keep their value.

Pure Python (no torch): the CLI applies it before training imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..images import is_image_file
from .budget import parse_duration

# (budget up to, in seconds, input size): shorter budgets train smaller images.
SIZES = ((900.0, 64), (2400.0, 80), (float("inf"), 96))
# Budgets past this many seconds train long enough to memorise a small set without more
# regularisation.
LONG_BUDGET = 1800.0
LONG: dict[str, Any] = {
    "augment": "flip,random-resized-crop=0.35,color-jitter=0.3,cutmix:p=0.5", "ema": True}
# A folder of at most this many images, trained with no --model, --epochs or --time, gets
# the recipe of SMALL_DATA_BUDGET rather than the tutorial network's ten epochs: on a
# small set the recipe's accuracy is worth the minutes (benchmarks/small_data_default.py).
# Its epochs are capped as well: a set of a few dozen images would otherwise spend the five
# minutes on a thousand epochs that learn nothing more.
SMALL_DATA = 10_000
SMALL_DATA_BUDGET = "5m"
SMALL_DATA_EPOCHS = 100
BASE: dict[str, Any] = {
    "model": "resnet-s", "model_options": {"depth": 20}, "optimizer": "sgd", "lr": 0.1,
    "weight_decay": 5e-4, "scheduler": "onecycle", "label_smoothing": 0.1,
    "augment": "flip,random-resized-crop=0.35", "batch_size": 64,
}


def budget_recipe(time: str) -> dict[str, Any]:
    """TrainConfig values for a run of ``time`` (e.g. "5m") when no model is named."""
    seconds = parse_duration(time)
    size = next(size for limit, size in SIZES if seconds <= limit)
    recipe = BASE | (LONG if seconds > LONG_BUDGET else {})
    return recipe | {"img_size": size, "model_options": dict(BASE["model_options"])}  # a copy


def count_images(folder: Path, limit: int) -> int:
    """Image files under ``folder`` (links followed), counting stops past ``limit``."""
    found, seen = 0, set()
    for here, dirs, names in os.walk(folder, followlinks=True):
        seen.add(os.path.realpath(here))
        dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(here, d)) not in seen]
        found += sum(1 for name in names if is_image_file(name))
        if found > limit:
            break
    return found


def small_folder_images(data: str | None) -> int | None:
    """The image count when ``data`` is a folder of at most SMALL_DATA images, else None."""
    if not data or not Path(data).is_dir():
        return None  # a dataset name or a CSV file: its size is known only once it loads
    images = count_images(Path(data), SMALL_DATA)
    return images if 0 < images <= SMALL_DATA else None


def recipe_for(given: dict[str, Any]) -> tuple[str, dict[str, Any], str] | None:
    """(budget, TrainConfig values, why) when the options ``given`` leave the model to
    imgcls: a budget with no model, or a small folder with no model, epochs or budget."""
    if {"model", "weights"} & given.keys():
        return None
    if given.get("time"):
        return given["time"], budget_recipe(given["time"]), "no --model given"
    images = None if "epochs" in given else small_folder_images(given.get("data"))
    if images is None:
        return None
    recipe = budget_recipe(SMALL_DATA_BUDGET) | {"time": SMALL_DATA_BUDGET,
                                                 "epochs": SMALL_DATA_EPOCHS}
    return SMALL_DATA_BUDGET, recipe, (f"a folder of {images:,} images, and no --model, "
                                       f"--epochs or --time given; at most "
                                       f"{SMALL_DATA_EPOCHS} epochs")


def describe_recipe(time: str, recipe: dict[str, Any], given: set[str],
                    reason: str = "no --model given") -> str:
    """One line for the run summary: what the budget chose, and what the user kept."""
    chosen = {k: v for k, v in recipe.items() if k not in given}
    options = chosen.get("model_options", {})
    model = chosen.get("model", "")
    if options:
        model += " (" + ", ".join(f"{k} {v}" for k, v in options.items()) + ")"
    parts = [model] if model else []
    if "img_size" in chosen:
        parts.append(f"{chosen['img_size']} px")
    if "optimizer" in chosen:
        parts.append(f"{chosen['optimizer']} lr {chosen.get('lr', 'as given')}")
    parts += [f"{chosen[k]}" for k in ("scheduler",) if k in chosen]
    for key, label in (("label_smoothing", "label smoothing"), ("weight_decay", "weight decay"),
                       ("batch_size", "batch"), ("augment", "augment")):
        if key in chosen:
            parts.append(f"{label} {chosen[key]}")
    if chosen.get("ema"):
        parts.append("EMA of the weights")
    return (f"recipe for a {time} budget ({reason}): {', '.join(parts)}; "
            "any option you give overrides it")
