"""--time: the epoch count and LR schedule fitted to a time budget, re-planned as it goes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from imgcls.errors import ConfigError
from imgcls.registry import get_model
from imgcls.train import Reporter, TrainConfig, TrainingInterrupted, fit
from imgcls.train.budget import BudgetPlan, BudgetSchedule, parse_duration
from imgcls.train.config import with_overrides

from .helpers import colour_data, read_metrics, recording, tiny_config


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 40 images a class at 16 px: 15 steps an epoch, so the steps, which a plan can cut,
    # take more of an epoch than validating and saving, which it cannot.
    return colour_data(tmp_path_factory.mktemp("budget") / "data", per_class=40)


@pytest.fixture(autouse=True)
def one_thread():
    """Two torch threads on a machine other jobs keep busy wait for each other, and a
    step's time swings several-fold; one thread keeps the speed the plan measures."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Clock(Reporter):
    """Notes when training starts (after data and model are ready: the budget's start)."""

    def start(self, info: dict) -> None:
        self.started, self.info = time.perf_counter(), info


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400),
                                           ("1.5h", 5400), (" 2M ", 120), ("0.5s", 0.5),
                                           ("45", 45), ("1d", 86400)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["m", "10x", "1m1m", "0s", "-5m", "", "31d", "99999h", "s5"])
def test_bad_durations_are_config_errors_with_an_example(text):
    with pytest.raises(ConfigError, match="--time") as caught:
        parse_duration(text)
    assert "--time 10m" in caught.value.hint
    with pytest.raises(ConfigError, match="--time"):
        TrainConfig(time=text).validate(get_model("basic-cnn").spec)


def test_epochs_default_to_ten_and_cap_a_budget_at_1000_unless_given():
    assert TrainConfig().epochs == 10
    assert TrainConfig(time="10m").epochs == 1000
    assert TrainConfig(time="10m", epochs=30).epochs == 30
    # fit(config, time=...) as fit(time=...): a defaulted epoch count is chosen again
    assert with_overrides(TrainConfig(lr=0.1), {"time": "1m"}).epochs == 1000
    assert with_overrides(TrainConfig(epochs=10), {"time": "1m"}).epochs == 10
    assert with_overrides(TrainConfig(time="1m"), {"time": None}).epochs == 10


@pytest.mark.parametrize("scheduler, final", [("cosine", 0.0), ("onecycle", 1 / 25e4)])
def test_a_replanned_schedule_moves_smoothly_and_ends_on_its_last_step(scheduler, final):
    schedule = BudgetSchedule(scheduler, warmup_epochs=1.0, steps_per_epoch=10,
                              total_steps=10_000)
    factors = [schedule(s) for s in range(10)]
    assert factors == sorted(factors) and factors[-1] < 1  # warming up over epoch 1
    for step, total in ((10, 200), (50, 120), (80, 160), (150, 155)):  # down, up, down
        before = schedule(step)
        schedule.replan(step, total)
        assert schedule(step) == pytest.approx(before)
    decay = [schedule(s) for s in range(10, 155)]
    assert decay == sorted(decay, reverse=True)
    assert schedule(154) == pytest.approx(final) and schedule.decay_done(155)
    assert not schedule.decay_done(154)


def test_a_plan_fits_whole_epochs_then_a_shortened_last_one():
    plan = BudgetPlan.start(seconds=10.0, cap=100, steps_per_epoch=10)
    # epoch 1: 10 steps in 0.8 s, 0.2 s of validation and saving: 1 s an epoch
    planned = plan.after_epoch(1, 10, spent=1.0, times=(0.8, 1.0), decay_done=False)
    assert planned == 100 and plan.planned_epochs == 10.0
    # slower, 1.8 s an epoch (0.16 s a step), 7.1 s left: 3 whole epochs (5.4 s), then
    # 1.7 s: 0.2 s to validate and 9 steps (1.44 s)
    planned = plan.after_epoch(2, 20, spent=2.9, times=(1.6, 1.8), decay_done=False)
    assert planned == 20 + 30 + 9 and plan.planned_epochs == 5.9
    assert [r["planned_epochs"] for r in plan.replans] == [10.0, 5.9]
    assert plan.after_epoch(3, 30, spent=3.8, times=(0.8, 1.0), decay_done=True) == 30
    late = BudgetPlan.start(seconds=1.0, cap=100, steps_per_epoch=10)  # epoch 1 overran:
    assert late.after_epoch(1, 10, spent=2.0, times=(1.5, 2.0), decay_done=False) == 11
    assert late.replans[-1]["planned_epochs"] == 1.1  # one step more finishes the decay
    capped = BudgetPlan.start(seconds=100.0, cap=3, steps_per_epoch=10)
    assert capped.after_epoch(1, 10, spent=1.0, times=(0.8, 1.0), decay_done=False) == 30


def test_time_ends_a_run_on_budget_with_a_finished_decay(data, tmp_path):
    fit(tiny_config(data, tmp_path, name="warm", epochs=1))  # the first fit in a process
    budget = 6.0                                              # is seconds slower
    clock = Clock()
    result = fit(tiny_config(data, tmp_path, name="budget", epochs=None, time="6s",
                             warmup_epochs=1.0), clock)
    trained = time.perf_counter() - clock.started
    plan = result.plan
    assert 0.9 * budget <= trained <= 1.1 * budget, plan
    assert 0.9 * budget <= plan["used_seconds"] <= 1.1 * budget, plan
    assert plan["decay_completed"] and plan["budget_seconds"] == budget
    records = read_metrics(result.run_dir)
    assert len(records) == plan["epochs_run"] >= 3
    assert records[-1]["lr"] == 0.0  # cosine's final value, on the last step
    lrs = [r["lr"] for r in records[1:]]
    assert lrs == sorted(lrs, reverse=True)  # decaying after the warm-up, never jumping up
    assert all("planned_epochs" in r for r in records)
    assert records[-1]["planned_epochs"] == plan["planned_epochs"]
    resolved = json.loads((result.run_dir / "config.json").read_text())
    assert resolved["time"] == "6s" and resolved["time_budget"] == plan
    assert plan["replans"][0]["epoch"] == 1


def test_epochs_cap_a_budget_and_the_decay_still_ends(data, tmp_path):
    result = fit(tiny_config(data, tmp_path, name="capped", epochs=2, time="1h"))
    assert result.plan["epochs_run"] == 2 and result.plan["decay_completed"]
    assert read_metrics(result.run_dir)[-1]["lr"] == 0.0


def test_a_budget_run_resumes_with_the_time_it_has_left(data, tmp_path):
    with recording(stop_after=2), pytest.raises(TrainingInterrupted):
        fit(tiny_config(data, tmp_path, name="cut", epochs=None, time="3s"))
    run = tmp_path / "cut"
    spent = json.loads((run / "config.json").read_text())["time_budget"]["used_seconds"]
    with pytest.raises(ConfigError, match="cannot change when resuming: time"):
        fit(resume=run, time="1h")
    saved = json.loads((run / "config.json").read_text())["time_budget"]["planned_epochs"]
    clock = Clock()
    result = fit(resume=run, reporter=clock)
    assert clock.info["start_epoch"] == 3 and clock.info["epochs"] == math.ceil(saved)
    assert result.plan["decay_completed"] and result.plan["used_seconds"] > spent
    assert result.plan["used_seconds"] <= 3.0 * 1.1
    assert [r["epoch"] for r in read_metrics(run)] == list(range(1, len(result.history) + 1))
    assert read_metrics(run)[-1]["lr"] == 0.0
    with pytest.raises(ConfigError, match="run is complete"):
        fit(resume=run)


def test_tune_trials_keep_the_budget_and_cannot_tune_it():
    from imgcls.tune.space import apply_params, tunable_names

    trial = apply_params(TrainConfig(time="2m", epochs=8), {"lr": 0.01})
    assert trial.time == "2m" and trial.epochs == 8 and trial.lr == 0.01
    assert "time" not in tunable_names() and "epochs" not in tunable_names()


def test_the_cli_refuses_a_bad_budget_in_one_line(data, tmp_path, capsys):
    from imgcls.cli import main

    assert main(["train", "--data", str(data), "--out-dir", str(tmp_path), "--time", "10x",
                 "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "Error: --time '10x' is not a duration." in err and "Traceback" not in err
