"""The TensorBoard plugin logs every epoch's metrics as scalars, once, through the events."""

from __future__ import annotations

import pytest
from imgcls_tensorboard import tag
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from imgcls.registry import list_models
from imgcls.train import TrainConfig, fit


def scalars(run_dir):
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {name: [(e.step, e.value) for e in events.Scalars(name)]
            for name in events.Tags()["scalars"]}


def test_tags():
    assert [tag(n) for n in ("train_loss", "val_macro_f1", "lr", "epoch_seconds")] == [
        "train/loss", "val/macro_f1", "opt/lr", "time/epoch_seconds"]


def test_training_writes_one_scalar_per_metric_per_epoch(tmp_path):
    assert list_models()  # plugins are loaded, this one among them
    config = TrainConfig(data="shapes", out=str(tmp_path), epochs=2, batch_size=16,
                         img_size=16, augment="none", report=False,
                         data_options={"classes": 2, "train_per_class": 16,
                                       "val_per_class": 4, "size": 16})
    result = fit(config)
    logged = scalars(result.run_dir)
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "opt/lr",
            "time/images_per_second"} <= set(logged)
    assert [step for step, _ in logged["val/acc"]] == [1, 2]
    assert [value for _, value in logged["val/acc"]] == pytest.approx(
        [r["val_acc"] for r in result.history])
