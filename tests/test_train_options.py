"""fit() features end to end on tiny data: determinism, early stop, balance, batch augmentations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from imgcls import hookimpl
from imgcls.checkpoint import load_checkpoint
from imgcls.plugins import load_plugins, pm
from imgcls.specs import AugmentationSpec
from imgcls.train import fit

from .helpers import colour_data, read_metrics, recording, tiny_config


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_data(tmp_path_factory.mktemp("features") / "data")


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_data(tmp_path_factory.mktemp("imbalanced") / "data",
                       counts={"red": 24, "green": 4, "blue": 4})


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(data, tmp_path):
    runs = [fit(tiny_config(data, tmp_path, seed=seed, epochs=2)).run_dir for seed in (5, 5, 6)]
    texts = [(run / "metrics.jsonl").read_bytes() for run in runs]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_patience_stops_early_and_keeps_the_best_epoch(data, tmp_path):
    # A vanishing learning rate cannot improve accuracy after the first epoch.
    with recording() as recorder:
        result = fit(tiny_config(data, tmp_path, epochs=6, lr=1e-12, patience=2,
                                 scheduler="none"))
    assert result.stopped_early and [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.best["epoch"] == 1 and len(read_metrics(result.run_dir)) == 3
    assert recorder.events[-1][0] == "end" and recorder.events[-1][1] is result


def test_class_weights_change_the_training_loss(imbalanced, tmp_path):
    plain = fit(tiny_config(imbalanced, tmp_path, epochs=1))
    weighted = fit(tiny_config(imbalanced, tmp_path, epochs=1, class_weights="auto"))
    balanced = fit(tiny_config(imbalanced, tmp_path, epochs=1, sampler="balanced"))
    losses = {run.history[0]["train_loss"] for run in (plain, weighted, balanced)}
    assert len(losses) == 3


def test_select_metric_loss_picks_the_lowest_validation_loss(data, tmp_path):
    result = fit(tiny_config(data, tmp_path, epochs=3, select_metric="loss"))
    lowest = min(result.history, key=lambda r: r["val_loss"])
    assert result.best["epoch"] == lowest["epoch"]
    manifest = load_checkpoint(result.best_path).manifest
    assert manifest["training"]["best"]["val_loss"] == lowest["val_loss"]


@pytest.mark.parametrize("options", [
    dict(optimizer="sgd", lr=0.05, scheduler="step", step_size=1, grad_clip=1.0),
    dict(optimizer="adam", scheduler="onecycle", label_smoothing=0.1),
    dict(amp=True, amp_dtype="bf16"),
])
def test_option_combinations_train(data, tmp_path, options):
    result = fit(tiny_config(data, tmp_path, epochs=2, **options))
    # A NaN loss would have raised; three colours, chance is 1/3.
    assert result.best["val_acc"] >= 0.6


def test_ema_weights_are_evaluated_and_saved(data, tmp_path):
    result = fit(tiny_config(data, tmp_path, epochs=1, ema=True, ema_decay=0.99))
    saved = load_checkpoint(result.best_path).model.state_dict()
    state = torch.load(result.run_dir / "last.pt", weights_only=True)
    raw = state["model"]
    ema = state["stepper"]["ema"]["weights"]
    # One epoch: best and last are the same epoch, and best.safetensors holds the
    # average, not the raw weights it differs from.
    assert not torch.equal(raw["0.weight"], ema["0.weight"])
    assert torch.equal(saved["0.weight"], ema["0.weight"])


# --------------------------------------------------------------------------- batch augmentations

class _BatchAugmentPlugin:
    """Registers ``swap-targets``: a batch augmentation that reverses the class order."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def build(self) -> Callable:
        def swap(images: torch.Tensor, targets: torch.Tensor):
            self.calls.append((images.clone(), targets.clone()))
            return images, targets.flip(1)
        return swap

    @hookimpl
    def register_augmentations(self, register: Callable) -> None:
        register(AugmentationSpec("swap-targets", self.build, "test only", level="batch"))


@pytest.fixture
def batch_plugin():
    load_plugins()
    plugin = _BatchAugmentPlugin()
    pm.register(plugin, name="test-batch-augment")
    yield plugin
    pm.unregister(name="test-batch-augment")


def test_batch_augmentations_get_normalised_images_and_smoothed_one_hot_targets(
        data, tmp_path, batch_plugin):
    result = fit(tiny_config(data, tmp_path, epochs=3, augment="swap-targets",
                             label_smoothing=0.3, lr=5e-3))
    images, targets = batch_plugin.calls[0]
    assert images.dtype == torch.float32 and images.ndim == 4 and images.max() <= 1.0
    assert targets.shape == (len(images), 3)
    assert torch.allclose(targets.sum(1), torch.ones(len(images)))
    assert sorted(targets.unique().tolist()) == pytest.approx([0.1, 0.8])
    # The loss used the swapped targets: with 3 classes reversed, red and blue trade
    # places and the model learns to call them by each other's names.
    assert result.history[-1]["val_acc"] < 0.5
    assert result.history[-1]["train_acc"] < 0.5


def test_cli_reports_early_stopping(data, tmp_path, capsys):
    from imgcls.cli import main

    code = main(["train", "--data", str(data), "--out", str(tmp_path), "--name", "es", "-e", "5",
                 "-b", "8", "--img-size", "16", "--lr", "1e-12", "--patience", "1",
                 "--no-report"])
    out = capsys.readouterr().out
    assert code == 0 and "early stop: no improvement in accuracy for 1 epochs" in out
    assert len(read_metrics(tmp_path / "es")) == 2


def test_a_warmup_longer_than_half_the_run_is_refused_in_one_line(tmp_path, capsys):
    from imgcls.cli import main

    code = main(["train", "--data", "shapes", "--epochs", "1", "--warmup-epochs", "2",
                 "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.splitlines() == [
        "Error: --warmup-epochs 2 is more than half of --epochs 1.",
        "Hint: For example: --warmup-epochs 0.5, or more --epochs."]
    assert not list(tmp_path.iterdir())  # before any run folder is made
