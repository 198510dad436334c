"""Issue 27 for imgcls train: the run folder, names, options and plugins that misbehave."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
import unicodedata
from pathlib import Path

import pytest
from torch import nn

from imgcls import hookimpl, plugins
from imgcls.checkpoint import load_checkpoint, load_resume_state
from imgcls.cli import main
from imgcls.specs import DatasetSpec, ModelSpec, Preprocess

from .helpers import wait_for_first_epoch, write_class_folders
from .outputs_fixtures import TINY_TRAIN, one_error_line, snapshot

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40)}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("train-data") / "d", COLOURS,
                               per_class=6, size=16)


def train(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["train", *TINY_TRAIN, *args])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/imgcls-absolute-run", "a/b"])
def test_train_name_cannot_leave_out_dir(data, tmp_path, capsys, name):
    out = tmp_path / "one" / "two" / "runs"
    code, err = train(["--data", str(data), "--out-dir", str(out), "--name", name], capsys)
    assert code == 1 and one_error_line(err) and "must stay inside --out-dir" in err
    assert not (out.parent.parent / "escaped").exists()
    assert not Path("/tmp/imgcls-absolute-run").exists()


def test_train_run_folder_inside_the_data_is_refused(data, capsys):
    before = snapshot(data)
    code, err = train(["--data", str(data), "--out-dir", str(data / "red")], capsys)
    assert code == 1 and one_error_line(err) and "input folder" in err
    assert snapshot(data) == before


def test_train_non_utf8_class_folder_name(tmp_path, capsys):
    root = write_class_folders(tmp_path / "d", {"plain": (30, 200, 40)}, per_class=6, size=16)
    odd = os.fsdecode(b"\xff\xfecat")  # not UTF-8: a surrogate-escaped name in Python
    write_class_folders(root, {odd: (220, 30, 30)}, per_class=6, size=16)
    code, err = train(["--data", str(root), "--out-dir", str(tmp_path / "runs"), "--name", "u"],
                      capsys)
    assert code == 0, err
    classes = load_checkpoint(tmp_path / "runs" / "u" / "best.safetensors").classes
    assert classes == ["plain", "\\xff\\xfecat"]  # the bytes, shown as escapes


def test_unknown_data_opt_for_the_folder_loader_is_one_line(data, tmp_path, capsys):
    code, err = train(["--data", str(data), "--out-dir", str(tmp_path), "--data-opt", "colour=1"],
                      capsys)
    assert code == 1 and one_error_line(err), err
    assert "folder dataset loader does not take" in err and "outside" in err


def test_absurd_model_size_is_one_line(data, tmp_path, capsys):
    code, err = train(["--data", str(data), "--out-dir", str(tmp_path), "--model-opt",
                       "hidden=10000000000"], capsys)
    assert code == 1 and one_error_line(err), err
    assert "too large" in err and "GiB" in err


def test_workers_are_bounded(data, tmp_path, capsys):
    code, err = train(["--data", str(data), "--out-dir", str(tmp_path), "--workers",
                       "1000000"], capsys)
    assert code == 1 and one_error_line(err) and "limit" in err
    for command in (["infer", "m.onnx", str(data)], ["data", "check", "--data", str(data)]):
        assert main([*command, "--workers", "1000000"]) == 1
        err = capsys.readouterr().err
        assert one_error_line(err) and "at most" in err


# --------------------------------------------------------------------------- plugins


class _BadHead(nn.Module):
    def __init__(self, num_classes: int, **_: object) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(3, num_classes + 1))

    def forward(self, x):
        return self.net(x)


def _crashing_loader(source: str | None, **options: object) -> object:
    raise KeyError("no such column")  # a plugin's bug


@pytest.fixture
def bad_plugin():
    module = types.ModuleType("bad_plugin")

    @hookimpl
    def register_models(register):
        register(ModelSpec("bad-head", _BadHead, Preprocess(size=(16, 16))))

    @hookimpl
    def register_datasets(register):
        register(DatasetSpec("crashing", _crashing_loader))

    module.register_models, module.register_datasets = register_models, register_datasets
    plugins.load_plugins()
    plugins.pm.register(module, name="bad-plugin")
    yield
    plugins.pm.unregister(name="bad-plugin")


def test_plugin_model_with_wrong_class_count_is_named_before_training(bad_plugin, data,
                                                                       tmp_path, capsys):
    code, err = train(["--data", str(data), "--out-dir", str(tmp_path), "--model", "bad-head",
                       "--name", "b"], capsys)
    assert code == 1 and one_error_line(err), err
    assert "'bad-plugin'" in err and "(1, 3)" in err and "2 classes" in err
    assert not (tmp_path / "b" / "metrics.jsonl").exists()  # no epoch ran


def test_plugin_dataset_loader_crash_names_the_plugin(bad_plugin, tmp_path, capsys):
    code, err = train(["--data", "crashing:x", "--out-dir", str(tmp_path)], capsys)
    assert code == 1 and one_error_line(err), err
    assert "'crashing' of plugin 'bad-plugin'" in err and "KeyError" in err
    assert main(["data", "check", "--data", "crashing:x"]) == 1  # every command that loads
    err = capsys.readouterr().err
    assert one_error_line(err) and "'crashing' of plugin 'bad-plugin'" in err


# --------------------------------------------------------------------------- class folders


def test_class_folders_differing_only_in_normalisation_are_refused(tmp_path, capsys):
    nfc = unicodedata.normalize("NFC", "café")
    root = write_class_folders(tmp_path / "d", {nfc: (220, 30, 30), "tea": (30, 200, 40)},
                               per_class=6, size=16)
    write_class_folders(root, {unicodedata.normalize("NFD", nfc): (40, 50, 210)}, per_class=6,
                        size=16)
    code, err = train(["--data", str(root), "--out-dir", str(tmp_path / "runs")], capsys)
    assert code == 1 and one_error_line(err) and "NFC/NFD" in err


def test_class_folders_differing_only_in_case_are_warned(tmp_path, capsys):
    root = write_class_folders(tmp_path / "d", {"Cat": (220, 30, 30), "cat": (30, 200, 40)},
                               per_class=6, size=16)
    code, err = train(["--data", str(root), "--out-dir", str(tmp_path / "runs")], capsys)
    assert code == 0, err
    assert "Warning:" in err and "differ only in case" in err


def test_an_empty_class_folder_is_warned(tmp_path, capsys):
    root = write_class_folders(tmp_path / "d", COLOURS, per_class=6, size=16)
    (root / "blue").mkdir()
    code, err = train(["--data", str(root), "--out-dir", str(tmp_path / "runs")], capsys)
    assert code == 0, err
    assert "Warning:" in err and "hold no images" in err and "blue" in err


# --------------------------------------------------------------------------- SIGTERM


@pytest.mark.slow
def test_sigterm_stops_training_like_ctrl_c(data, tmp_path):
    run = tmp_path / "term"
    # Signals a test sends must reach the child as a terminal's would: default handling.
    start = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
             "from imgcls.cli import main; sys.exit(main(sys.argv[1:]))")
    command = [sys.executable, "-c", start, "train", "--data", str(data), "--out-dir",
               str(tmp_path), "--name", "term", "-e", "200", "-b", "4", "--img-size", "16",
               "--no-report", "--workers", "1", "--cache", "none"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    # A loaded machine can take minutes to finish the first epoch; a signal before it
    # would test setup, not training.
    assert wait_for_first_epoch(process, run, 300), \
        "training did not finish its first epoch within 300 s"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "imgcls train --resume" in err and "Traceback" not in err, err
    state = load_resume_state(run)
    assert state["epoch"] >= 1
    assert not list(run.glob(".*.tmp"))
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == state["epoch"]
