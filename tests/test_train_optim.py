"""Optimisation plumbing: schedules, decay groups, class weights, loss, EMA, AMP, best epoch."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from imgcls.errors import ConfigError
from imgcls.train.config import TrainConfig
from imgcls.train.loop import BestTracker
from imgcls.train.optim import (
    ModelEma,
    Stepper,
    TrainLoss,
    build_optimizer,
    inverse_frequency_weights,
    lr_factor,
    param_groups,
)
from imgcls.train.precision import Precision, resolve_precision


def factors(config: TrainConfig, steps_per_epoch: int = 10) -> list[float]:
    factor = lr_factor(config, steps_per_epoch)
    return [factor(step) for step in range(config.epochs * steps_per_epoch)]


def test_cosine_warms_up_linearly_then_decays_to_zero():
    values = factors(TrainConfig(epochs=5, scheduler="cosine", warmup_epochs=1))
    assert values[:10] == pytest.approx([(s + 1) / 11 for s in range(10)])
    assert values[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))
    assert values[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 39 / 40)))


def test_step_schedule_decays_by_gamma_every_step_size_epochs():
    values = factors(TrainConfig(epochs=6, scheduler="step", step_size=2, gamma=0.5,
                                 warmup_epochs=0))
    assert [values[e * 10] for e in range(6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_onecycle_rises_to_the_peak_then_falls_far_below_the_start():
    values = factors(TrainConfig(epochs=10, scheduler="onecycle", warmup_epochs=3))
    assert values[0] == pytest.approx(1 / 25)
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 30
    assert values[-1] < 1e-3


def test_no_schedule_is_constant_after_warmup():
    assert set(factors(TrainConfig(epochs=3, scheduler="none", warmup_epochs=0))) == {1.0}


def test_weight_decay_skips_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 0.05, lr=1e-3)
    assert all(p.ndim > 1 for p in decay["params"]) and len(decay["params"]) == 2
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize("name,kind", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                       ("sgd", torch.optim.SGD)])
def test_optimizers(name, kind):
    optimizer = build_optimizer(nn.Linear(3, 2), TrainConfig(optimizer=name, momentum=0.8,
                                                             weight_decay=0.01))
    assert isinstance(optimizer, kind)
    if name == "sgd":
        assert optimizer.defaults["momentum"] == 0.8 and optimizer.defaults["nesterov"]


def test_inverse_frequency_weights_and_class_weights_change_the_loss():
    labels = np.array([0] * 8 + [1] * 2)
    weights = inverse_frequency_weights(labels, 2)
    assert weights.tolist() == pytest.approx([10 / 16, 10 / 4])
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    targets = torch.tensor([0, 0, 1, 1])
    plain = TrainLoss.build(TrainConfig(), labels, 2, torch.device("cpu"))
    weighted = TrainLoss.build(TrainConfig(class_weights="auto"), labels, 2, torch.device("cpu"))
    # The rare class's errors count more, so the weighted loss is higher here.
    assert weighted(logits, targets).item() > plain(logits, targets).item() + 0.5


def test_soft_targets_with_smoothing_give_the_same_loss_as_hard_labels():
    loss = TrainLoss(4, None, smoothing=0.1)
    labels = torch.tensor([0, 3, 2])
    targets = loss.one_hot(labels)
    assert targets[0].tolist() == pytest.approx([0.925, 0.025, 0.025, 0.025])
    logits = torch.randn(3, 4)
    assert loss(logits, targets).item() == pytest.approx(loss(logits, labels).item(), rel=1e-5)


def test_ema_lags_behind_the_model_and_tracks_it():
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = ModelEma(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(200):
        ema.update(model)
    assert 0.99 < ema.module.weight.mean().item() <= 1.0
    fresh = ModelEma(model, decay=0.9)
    fresh.load_state_dict(ema.state_dict())
    assert fresh.updates == 200 and torch.equal(fresh.module.weight, ema.module.weight)


def test_stepper_clips_gradients_and_steps_the_schedule():
    model = nn.Linear(3, 1)
    config = TrainConfig(epochs=2, grad_clip=0.01, warmup_epochs=0, lr=0.1, optimizer="sgd",
                         momentum=0.0, weight_decay=0.0)
    stepper = Stepper(model, config, steps_per_epoch=2, precision=Precision("cpu"))
    before = model.weight.detach().clone()
    stepper.step((model(torch.full((4, 3), 100.0)) ** 2).mean())
    # Clipped to norm 0.01 over all parameters, so no weight moved by more than lr * 0.01.
    assert (model.weight - before).abs().max().item() <= 0.1 * 0.01 + 1e-7
    assert stepper.last_lr == pytest.approx(0.1) and stepper.lr < 0.1


def test_precision_choices(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision(False, "auto", cpu, print).dtype is None
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision(True, "fp16", cpu, print)
    monkeypatch.setattr("imgcls.train.precision.cpu_supports_bf16", lambda: True)
    assert resolve_precision(True, "auto", cpu, print).dtype == torch.bfloat16
    warnings: list[str] = []
    monkeypatch.setattr("imgcls.train.precision.cpu_supports_bf16", lambda: False)
    assert resolve_precision(True, "bf16", cpu, warnings.append).dtype is None
    assert "fp32" in warnings[0]
    assert not Precision("cpu", torch.bfloat16).grad_scaler().is_enabled()


@pytest.mark.parametrize("metric,values,best_epoch", [
    ("accuracy", [0.5, 0.7, 0.7, 0.6], 2),
    ("loss", [0.9, 0.4, 0.5, 0.4], 2),
    ("macro-f1", [0.1, 0.2, 0.3, 0.3], 3),
])
def test_best_tracker_selects_by_metric_and_keeps_the_earlier_tie(metric, values, best_epoch):
    key = {"accuracy": "val_acc", "loss": "val_loss", "macro-f1": "val_macro_f1"}[metric]
    tracker = BestTracker(metric, patience=2)
    for epoch, value in enumerate(values, start=1):
        tracker.update({"epoch": epoch, key: value})
    assert tracker.best["epoch"] == best_epoch
    assert tracker.out_of_patience(best_epoch + 2) and not tracker.out_of_patience(best_epoch + 1)


def test_a_non_finite_epoch_is_never_selected_as_best():
    tracker = BestTracker("accuracy")
    assert not tracker.update({"epoch": 1, "val_acc": float("nan"), "val_loss": 0.5})
    assert not tracker.update({"epoch": 2, "val_acc": 0.9, "val_loss": float("inf")})
    assert not tracker.out_of_patience(2) and tracker.best == {}
    assert tracker.update({"epoch": 3, "val_acc": 0.6, "val_loss": 0.7})
    assert tracker.best["epoch"] == 3
    loss = BestTracker("loss")
    assert loss.update({"epoch": 1, "val_acc": 0.5, "val_loss": 0.9})
    assert not loss.update({"epoch": 2, "val_acc": 0.5, "val_loss": float("-inf")})


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_use_fused_kernels_on_the_cpu(optimizer):
    """One kernel per parameter: without fused=True, torch takes the per-tensor path on a CPU."""
    from imgcls.train.optim import build_optimizer

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    built = build_optimizer(model, TrainConfig(optimizer=optimizer))
    assert built.defaults["fused"] is True
    model(torch.randn(2, 3, 3, 3)).sum().backward()
    built.step()  # the fused kernel exists for this build of torch
