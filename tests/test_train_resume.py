"""Stopping and resuming: an interrupted run resumed ends exactly like an uninterrupted one."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from imgcls.checkpoint import load_resume_state
from imgcls.cli import main
from imgcls.errors import CheckpointError, ConfigError
from imgcls.train import TrainingInterrupted, fit

from .helpers import colour_data, read_metrics, recording, tiny_config, wait_for_first_epoch


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_data(tmp_path_factory.mktemp("resume") / "data")


def test_interrupted_then_resumed_equals_uninterrupted(data, tmp_path):
    # EMA, class weights, a balanced sampler and a schedule all carry state across epochs.
    options = dict(epochs=4, ema=True, ema_decay=0.9, sampler="balanced",
                   class_weights="auto", scheduler="cosine", warmup_epochs=1.0)
    straight = fit(tiny_config(data, tmp_path, name="straight", **options))
    with recording(stop_after=2), pytest.raises(TrainingInterrupted) as caught:
        fit(tiny_config(data, tmp_path, name="cut", **options))
    assert caught.value.epoch == 2 and "--resume" in caught.value.hint
    run = tmp_path / "cut"
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    assert load_resume_state(run)["epoch"] == 2
    resumed = fit(resume=run)
    assert read_metrics(run) == read_metrics(straight.run_dir)
    assert resumed.best == straight.best
    assert torch.equal(torch.load(run / "last.pt", weights_only=True)["model"]["0.weight"],
                       torch.load(straight.run_dir / "last.pt", weights_only=True)["model"][
                           "0.weight"])


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    from imgcls.checkpoint import save_resume_state
    from imgcls.train.run_folder import rng_state, set_rng_state

    save_resume_state(tmp_path / "last.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    # (load_resume_state wants a whole state; the RNG part is read as it reads it)
    set_rng_state(torch.load(tmp_path / "last.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_resume_rewrites_logs_to_the_saved_epochs_and_can_extend(data, tmp_path):
    fit(tiny_config(data, tmp_path, name="run", epochs=2))
    run = tmp_path / "run"
    with open(run / "metrics.jsonl", "a") as handle:  # an epoch logged but never saved
        handle.write('{"epoch": 3}\n')
    with recording() as recorder:
        result = fit(resume=run, epochs=3)
    assert recorder.events[0] == ("start", {"classes": ["blue", "green", "red"], "history": 2})
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]
    assert (run / "metrics.csv").read_text().count("\n") == 4
    assert len(result.history) == 3


def test_resume_refuses_changed_options_and_missing_state(data, tmp_path):
    fit(tiny_config(data, tmp_path, name="run", epochs=1))
    with pytest.raises(ConfigError, match="cannot change when resuming: lr"):
        fit(resume=tmp_path / "run", lr=0.5)
    with pytest.raises(CheckpointError, match="No resume state"):
        fit(resume=tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"not a state")
    with pytest.raises(CheckpointError, match="not a readable imgcls resume state"):
        fit(resume=tmp_path / "bad.pt")


def test_cli_interrupt_exits_130_with_the_resume_command(data, tmp_path, capsys):
    args = ["train", "--data", str(data), "--out", str(tmp_path), "--name", "cli", "-e", "3",
            "-b", "8", "--img-size", "16", "--no-report"]
    with recording(stop_after=1):
        code = main(args)
    err = capsys.readouterr().err
    assert code == 130
    assert f"imgcls train --resume {tmp_path / 'cli'}" in err and "Traceback" not in err
    assert main(["train", "--resume", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "resuming at epoch 2 of 3" in out and "epoch   1 " not in out
    assert [r["epoch"] for r in read_metrics(tmp_path / "cli")] == [1, 2, 3]


@pytest.mark.slow
def test_ctrl_c_on_a_real_process_leaves_a_resumable_run(data, tmp_path):
    run = tmp_path / "sig"
    # A process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Python keeps it so; restore Ctrl-C as a terminal would have it.
    start = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from imgcls.cli import main; sys.exit(main(sys.argv[1:]))")
    command = [sys.executable, "-c", start, "train", "--data", str(data), "--out",
               str(tmp_path), "--name", "sig", "-e", "200", "-b", "4", "--img-size", "16",
               "--no-report"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for_first_epoch(process, run, 120)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "imgcls train --resume" in err and "Traceback" not in err
    state = load_resume_state(run)
    assert state["epoch"] >= 1 and len(state["history"]) == state["epoch"]
