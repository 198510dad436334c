"""Nothing lost, nothing executed: hostile files, crashes, numerical faults, bad options."""

from __future__ import annotations

import contextlib
import csv
import os
import pickle
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from imgcls import hookimpl, plugins
from imgcls.checkpoint import load_checkpoint, load_resume_state
from imgcls.cli import main
from imgcls.errors import CheckpointError, NonFiniteLossError
from imgcls.specs import ModelSpec, Preprocess
from imgcls.train import TrainConfig, fit

from .helpers import write_class_folders


class _Exploit:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# torch notes the hand-made pickle's protocol (4) before refusing it.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_malicious_resume_state_is_refused_and_runs_nothing(tmp_path):
    run = tmp_path / "runs" / "evil"
    run.mkdir(parents=True)
    marker = tmp_path / "MARKER"
    with open(run / "last.pt", "wb") as handle:
        pickle.dump({"format": "imgcls.resume", "payload": _Exploit(marker)}, handle)
    with pytest.raises(CheckpointError, match="not a readable imgcls resume state"):
        load_resume_state(run)
    assert main(["train", "--resume", str(run)]) == 1
    assert not marker.exists()


def test_a_pickle_named_safetensors_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "best.safetensors"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError, match="not an imgcls checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- crashes


def _train_command(data: Path, out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "imgcls", "train", "--data", str(data), "--epochs",
            str(epochs), "--batch-size", "8", "--img-size", "32", "--out", str(out),
            "--name", "run", "--augment", "none", "--no-report"]


def _epochs_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


EPOCHS = 14
# (epochs the process must log first, then seconds more) before each SIGKILL: as soon as
# the first last.pt exists, then at moments inside later epochs (mid-step, mid-write).
KILLS = [(0, 0.0), (1, 0.15), (3, 0.3)]


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_completes(tmp_path):
    """One run killed at several moments in turn, each time resumed from what it left;
    the last resume completes every epoch. (One thread: on 2 busy cores, torch's second
    thread only spins.)"""
    data = write_class_folders(tmp_path / "data", {"a": (200, 40, 40), "b": (40, 40, 200)},
                               per_class=40, size=32)
    out, run = tmp_path / "runs", tmp_path / "runs" / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = _train_command(data, out, EPOCHS)
    for more_epochs, extra_delay in KILLS:
        wanted = _epochs_logged(run) + more_epochs
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        while (_epochs_logged(run) < wanted or not (run / "last.pt").exists()) \
                and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(extra_delay)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, f"training ended before kill {wanted}"
        assert _epochs_logged(run) >= wanted
        assert not [p.name for p in run.iterdir() if p.name.endswith((".safetensors", ".pt"))
                    and p.stat().st_size == 0]
        command = [sys.executable, "-m", "imgcls", "train", "--resume", str(run)]
    assert _epochs_logged(run) < EPOCHS
    resumed = subprocess.run(command, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert _epochs_logged(run) == EPOCHS
    loaded = load_checkpoint(run / "best.safetensors")
    assert loaded.classes == ["a", "b"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- NaN


@contextlib.contextmanager
def model_plugin(name: str, spec: ModelSpec):
    """Register a one-model plugin for the duration of a test."""
    module = types.ModuleType(name)

    @hookimpl
    def register_models(register):
        register(spec)

    module.register_models = register_models
    plugins.load_plugins()
    plugins.pm.register(module, name=name)
    try:
        yield
    finally:
        plugins.pm.unregister(module)


class _Poisoned(nn.Module):
    """A tiny net whose logits turn NaN from training step ``bad_from`` on."""

    def __init__(self, num_classes: int, bad_from: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, num_classes))
        self.bad_from = bad_from
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training:
            self.steps += 1
            if self.steps >= self.bad_from:
                out = out * float("nan")
        return out


@pytest.fixture
def poisoned_model():
    with model_plugin("poison", ModelSpec(
            "poisoned-net",
            lambda num_classes, image_size=(16, 16), bad_from=5: _Poisoned(num_classes,
                                                                          int(bad_from)),
            Preprocess(size=(16, 16)), "NaN after a few steps", min_size=4)):
        yield


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(poisoned_model,
                                                                     colour_folder, tmp_path):
    # 19 training images at batch 8: 3 steps an epoch, so step 5 is in epoch 2.
    config = TrainConfig(model="poisoned-net", data=str(colour_folder), epochs=4, batch_size=8,
                         augment="none", out=str(tmp_path), name="nan", report=False)
    with pytest.raises(NonFiniteLossError, match="epoch 2") as info:
        fit(config)
    assert "--skip-nonfinite" in info.value.hint
    best = load_checkpoint(tmp_path / "nan" / "best.safetensors")
    assert all(torch.isfinite(t).all() for t in best.model.state_dict().values())
    assert best.manifest["training"]["best"]["epoch"] == 1


def test_skip_nonfinite_skips_the_bad_steps(poisoned_model, colour_folder, tmp_path):
    result = fit(TrainConfig(model="poisoned-net", data=str(colour_folder), epochs=2,
                             batch_size=8, augment="none", out=str(tmp_path), name="skip",
                             report=False, skip_nonfinite=True, model_options={"bad_from": 2}))
    assert len(result.history) == 2
    weights = load_checkpoint(result.best_path).model.state_dict().values()
    assert all(torch.isfinite(t).all() for t in weights)


# --------------------------------------------------------------------------- options and paths


@pytest.mark.parametrize("args,message", [
    (["--epochs", "-3"], "--epochs must be at least 1"),
    (["--device", "tpu"], "Unknown device"),
    (["--val-split", "1.5"], "--val-split"),
])
def test_train_option_errors_are_one_line(args, message, colour_folder, tmp_path, capsys):
    code = main(["train", "--data", str(colour_folder), "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert err.startswith("Error: ") and "Hint: " in err


def test_unwritable_output_and_existing_run_folder(colour_folder, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["train", "--data", str(colour_folder), "--out", str(blocker / "runs")])
    assert code == 1 and "Cannot create run folder" in capsys.readouterr().err
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    code = main(["train", "--data", str(colour_folder), "--out", str(tmp_path / "runs"),
                 "--name", "taken"])
    err = capsys.readouterr().err
    assert code == 1 and "already exists" in err and "--exist-ok" in err


def test_unwritable_predictions_file(exported, colour_folder, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = main(["infer", str(exported), str(colour_folder), "-o", str(blocker / "p.csv")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("Error: ") and "Traceback" not in err


def test_non_ascii_paths_with_spaces_through_train_export_infer(tmp_path, capsys):
    root = tmp_path / "données d'été 猫"
    data = write_class_folders(root / "images", {"chat noir": (30, 30, 30),
                                                 "chien blanc": (230, 230, 230)}, per_class=10)
    out = root / "exécutions"
    assert main(["train", "--data", str(data), "--epochs", "2", "-b", "8", "--out", str(out),
                 "--name", "modèle 1", "--no-report"]) == 0
    checkpoint = out / "modèle 1" / "best.safetensors"
    model = root / "modèle exporté.onnx"
    assert main(["export", "onnx", str(checkpoint), "-o", str(model)]) == 0
    predictions = root / "prédictions.csv"
    assert main(["infer", str(model), str(data), "-o", str(predictions)]) == 0
    with open(predictions, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert {row["label"] for row in rows} <= {"chat noir", "chien blanc"}
    assert all("données d'été 猫" in row["path"] for row in rows)
    capsys.readouterr()


@pytest.fixture
def oom_model():
    class _Hungry(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.head = nn.Linear(3, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with model_plugin("hungry", ModelSpec(
            "hungry-net", lambda num_classes, **_: _Hungry(num_classes),
            Preprocess(size=(16, 16)), "always out of memory", min_size=4)):
        yield


def test_out_of_memory_suggests_a_smaller_batch(oom_model, colour_folder, tmp_path, capsys):
    code = main(["train", "--model", "hungry-net", "--data", str(colour_folder), "-b", "16",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "ran out of memory at batch size 16" in err
    assert "--batch-size 8" in err and "Traceback" not in err
