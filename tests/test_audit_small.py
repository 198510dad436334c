"""imgcls data audit on small folders: fold models train for enough optimiser steps, and
predictions too poor to trust are said to be so, in the console and in audit.html."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.audit.plan import MIN_STEPS, plan_folds, weak_predictions
from imgcls.cli import main
from imgcls.data.shapes import ShapesOptions, generate
from imgcls.train.config import TrainConfig


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- the plan


def test_small_folders_get_small_batches_and_enough_epochs():
    # 300 images, 5 folds: 240 per fold run, 192 after its validation split; at the
    # default batch of 64 that was 3 steps an epoch, 30 in 10 epochs.
    plan = plan_folds(300, 5, TrainConfig())
    assert (plan.images, plan.batch_size, plan.steps_per_epoch) == (192, 16, 12)
    assert plan.epochs == 50 and plan.steps == MIN_STEPS and plan.warning is None
    assert plan.describe() == "50 epochs of 12 batches of 16 per fold: 600 optimiser steps"
    # A large folder keeps the batch and the 10 epochs once they give enough steps.
    large = plan_folds(20_000, 5, TrainConfig())
    assert (large.batch_size, large.epochs) == (64, 10) and large.steps >= MIN_STEPS
    # A tiny one trains many one-step epochs, up to a cap.
    tiny = plan_folds(12, 2, TrainConfig())
    assert tiny.steps_per_epoch == 1 and tiny.epochs == 200
    # Epochs are raised, never lowered.
    assert plan_folds(300, 5, TrainConfig(epochs=80)).epochs == 80


def test_chosen_epochs_and_batch_win_but_too_few_steps_are_warned_about():
    plan = plan_folds(2500, 2, TrainConfig(epochs=1), fixed=frozenset({"epochs"}))
    assert plan.epochs == 1 and plan.steps < MIN_STEPS
    assert plan.warning.startswith(f"--epochs 1 gives each fold model only {plan.steps} "
                                   "optimiser steps")
    assert f"pass --epochs {-(-MIN_STEPS // plan.steps_per_epoch)}" in plan.warning
    fixed = plan_folds(300, 5, TrainConfig(batch_size=64), fixed=frozenset({"batch_size"}))
    assert fixed.batch_size == 64 and fixed.epochs == 200 and fixed.warning is None
    assert plan_folds(300, 5, TrainConfig(epochs=50),
                      fixed=frozenset({"epochs"})).warning is None


def test_predictions_near_the_majority_rate_are_weak():
    labels = ["a"] * 60 + ["b"] * 40
    warning = weak_predictions(0.65, labels, cross_validated=True)
    assert "agree with only 65.0% of the labels" in warning and "would get 60.0%" in warning
    assert "train the fold models longer" in warning
    assert weak_predictions(0.85, labels, cross_validated=True) is None
    assert "--probs from a better model" in weak_predictions(0.5, labels, False)


# --------------------------------------------------------------------------- the console


def blob_folder(root: Path, per_class: int = 6) -> Path:
    """Two classes of random colour blobs that share nothing a model could learn."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((16, 16)).save(root / label / f"{i}.png")
    return root


def test_weak_probabilities_warn_in_the_console_and_at_the_top_of_the_page(tmp_path,
                                                                          capsys):
    data = blob_folder(tmp_path / "data")
    rng = random.Random(0)
    probs = tmp_path / "probs.csv"
    with open(probs, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "a", "b"])
        for path in sorted(data.rglob("*.png")):
            p = round(rng.random(), 3)
            writer.writerow([str(path), p, round(1 - p, 3)])
    out = tmp_path / "audit"
    code = main(["data", "audit", "--data", str(data), "--probs", str(probs), "--out-dir",
                 str(out), "--no-duplicates"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Warning: The predictions agree with only" in captured.err
    assert "give --probs from a better model" in captured.err
    html = (out / "audit.html").read_text()
    warning = html.index('<p class="warning"><b>Warning:</b> The predictions agree with only')
    assert warning < html.index('class="summary"')  # above everything else


def test_too_few_chosen_epochs_are_warned_about_before_training(tmp_path, capsys):
    data = blob_folder(tmp_path / "data")
    out = tmp_path / "audit"
    code = main(["data", "audit", "--data", str(data), "--folds", "2", "--epochs", "1",
                 "--img-size", "16", "--no-duplicates", "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert ("2-fold cross-validation of vgg-bn (width 0.5, depth 3), 1 epoch of 1 batch of "
            "16 per fold: 1 optimiser steps") in captured.out
    assert "Warning: --epochs 1 gives each fold model only 1 optimiser steps" in captured.err
    # Models that learnt nothing: the flags are said to mean little, in the page too.
    assert "Warning: The predictions agree with only" in captured.err
    html = (out / "audit.html").read_text()
    assert html.count('class="warning"') == 2


# --------------------------------------------------------------------------- the must-show

FLIPS = 15


@pytest.fixture(scope="module")
def noisy_shapes(tmp_path_factory) -> tuple[Path, set[str]]:
    """300 circles and squares (32 px) in a CSV with 15 labels flipped at random."""
    root = generate(tmp_path_factory.mktemp("shapes") / "set", ShapesOptions(
        classes=2, train_per_class=120, val_per_class=30, size=32, seed=0))
    rows = [(str(path), folder.name) for split in ("train", "val")
            for folder in sorted((root / split).iterdir()) for path in sorted(folder.iterdir())]
    flipped = set(random.Random(0).sample(range(len(rows)), FLIPS))
    other = {"circle": "square", "square": "circle"}
    csv_path = root.parent / "noisy.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows([path, other[label] if i in flipped else label]
                         for i, (path, label) in enumerate(rows))
    return csv_path, {rows[i][0] for i in flipped}


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_the_default_audit_finds_flipped_labels_in_300_shapes(noisy_shapes, tmp_path,
                                                               capsys):
    data, flipped = noisy_shapes
    out = tmp_path / "audit"
    # Defaults throughout, but the input size (vgg-bn's default is 64 px): 24 px keeps
    # the 3,000 optimiser steps of the five folds to about 40 s on two busy cores.
    code = main(["data", "audit", "--data", str(data), "--img-size", "24", "--no-duplicates",
                 "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "50 epochs of 12 batches of 16 per fold: 600 optimiser steps" in captured.out
    issues = [row["path"] for row in rows_of(out / "label_issues.csv")]
    top = set(issues[:20]) & flipped
    print(f"{len(top)} of {FLIPS} flipped labels in the top 20 ({len(issues)} flagged)")
    assert len(top) >= 12
    assert "Warning" not in captured.err
