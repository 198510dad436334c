"""Hostile options and environments: markup in data, full disks, killed parents, inf/nan."""

from __future__ import annotations

import errno
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import imgcls.cli as cli
from imgcls.cli import main, print_error
from imgcls.errors import ConfigError, ImgclsError
from imgcls.registry import get_model
from imgcls.train.config import MAX_IMG_SIZE, TrainConfig, field_types

# Pieces of rich markup: tags, closers, escapes.
MARKUP = st.lists(st.sampled_from(["[", "]", "/", "red", "bold", "\\", "x", "[/]", "[red]"]),
                  min_size=1, max_size=6).map("".join)
FOLDER_NAME = MARKUP.map(lambda s: s.replace("/", "_")).filter(lambda s: s not in (".", ".."))
SLOW = settings(max_examples=6, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tiny_images(folder: Path, count: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")


TINY_TRAIN = ["--epochs", "1", "-b", "4", "--img-size", "16", "--augment", "none",
              "--no-report", "--cache", "none", "--workers", "0", "--val-split", "0.5"]

# --------------------------------------------------------------------------- markup


@SLOW
@given(name=FOLDER_NAME)
def test_markup_in_class_folder_names_is_shown_literally(name, tmp_path_factory, capsys):
    root = tmp_path_factory.mktemp("data")
    _tiny_images(root / name)
    _tiny_images(root / "plain")
    # The runs go beside the data: a run folder inside it is refused (issue 27).
    code, out, err = run(["train", "--data", str(root), "--out-dir",
                          str(root.parent / f"{root.name}-runs"), *TINY_TRAIN], capsys)
    assert code == 0, err
    assert f"  {name}" in out  # the class histogram names it as written


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=MARKUP)
def test_markup_in_a_data_path_is_shown_literally(text, tmp_path, capsys):
    missing = f"{tmp_path}/no{text}data"
    code, _, err = run(["train", "--data", missing, "--out-dir", str(tmp_path)], capsys)
    assert code == 1
    assert err.startswith("Error: ") and "Traceback" not in err
    flat = " ".join(err.split("\n"))
    assert missing in flat or repr(missing) in flat  # literally, or as the repr it quotes


@settings(max_examples=100, deadline=None)
@given(message=st.text() | MARKUP, hint=st.none() | st.text() | MARKUP)
def test_the_error_printer_shows_markup_literally(message, hint):
    from contextlib import redirect_stderr
    from io import StringIO

    buffer = StringIO()
    with redirect_stderr(buffer):
        print_error(ImgclsError(message, hint))
    assert buffer.getvalue().startswith("Error: ")


def test_the_error_printer_never_raises(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("console broken")

    monkeypatch.setattr(cli.err_console, "print", broken)
    print_error(ImgclsError("no [/] data", "a [red]hint"))
    err = capsys.readouterr().err
    assert "Error: no [/] data" in err and "Hint: a [red]hint" in err


# --------------------------------------------------------------------------- disk full


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/full/disk/file")


def test_a_full_disk_while_training_is_one_line(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    _tiny_images(root / "a")
    _tiny_images(root / "b")
    monkeypatch.setattr(os, "fsync", _disk_full)  # every checkpoint and metrics write fsyncs
    code, _, err = run(["train", "--data", str(root), "--out-dir", str(tmp_path / "runs"),
                        *TINY_TRAIN], capsys)
    assert code == 1 and "Traceback" not in err
    # (a progress bar cut short by the error may leave blank lines above it)
    assert err.lstrip().startswith("Error: ") and "disk is full" in err and "Hint: " in err


def test_a_full_disk_while_inferring_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("imgcls.infer.batch.run_inference", _disk_full)
    code, _, err = run(["infer", str(tmp_path / "m.onnx"), str(tmp_path)], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.startswith("Error: ") and "disk is full" in err and "/full/disk/file" in err


def test_a_full_disk_while_exporting_leaves_no_files(trained, tmp_path, monkeypatch, capsys):
    import imgcls.export.onnx as onnx_module

    real = onnx_module.atomic_write_bytes

    def write(path, data):
        if Path(path).suffix == ".onnx":
            _disk_full()
        real(path, data)

    monkeypatch.setattr(onnx_module, "atomic_write_bytes", write)
    target = tmp_path / "m.onnx"
    code, _, err = run(["export", "onnx", str(trained.best_path), "-o", str(target)], capsys)
    assert code == 1 and "disk is full" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- killed parent


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its reaper is missing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_decode_workers_die_with_a_sigkilled_infer(exported, tmp_path):
    _tiny_images(tmp_path / "images", 4)
    # Paths on a stdin that stays open: the run is mid-way, its workers waiting for work.
    proc = subprocess.Popen([sys.executable, "-m", "imgcls", "infer", str(exported), "-",
                             "--workers", "2", "-o", str(tmp_path / "p.csv")],
                            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for path in sorted((tmp_path / "images").iterdir()):
            proc.stdin.write(f"{path}\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) >= 2, "the decode workers never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [pid for pid in workers if _alive(pid)]
        for pid in survivors:  # clean up before failing
            os.kill(pid, signal.SIGKILL)
        assert not survivors
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- inf and nan

FLOAT_FIELDS = [name for name, kind in field_types().items() if kind is float]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(FLOAT_FIELDS),
       value=st.sampled_from([math.inf, -math.inf, math.nan]))
def test_every_float_option_must_be_finite(name, value):
    spec = get_model("basic-cnn").spec
    with pytest.raises(ConfigError, match="finite"):
        TrainConfig(**{name: value}).validate(spec)


@given(value=st.sampled_from(["inf", "-inf", "nan", "Infinity"]),
       flag=st.sampled_from(["model_options", "data_options"]))
def test_model_and_data_options_must_be_finite(value, flag):
    spec = get_model("basic-cnn").spec
    with pytest.raises(ConfigError, match="finite"):
        TrainConfig(**{flag: {"dropout": float(value)}}).validate(spec)


@pytest.mark.parametrize("args", [
    ["--lr", "inf"], ["--momentum", "inf"], ["--optimizer", "sgd", "--momentum", "nan"],
    ["--weight-decay", "nan"], ["--model-opt", "dropout=inf"], ["--data-opt", "size=nan"],
    ["--img-size", "100000"], ["--momentum", "-1"],
])
def test_hostile_train_options_are_one_line(args, tmp_path, capsys):
    code, _, err = run(["train", "--data", "shapes", "--out-dir", str(tmp_path), *args], capsys)
    assert code == 1 and err.startswith("Error: ") and "Traceback" not in err
    assert "finite" in err or str(MAX_IMG_SIZE) in err or "0 or more" in err
    assert not list(tmp_path.iterdir())  # refused before any run folder is made


@pytest.mark.parametrize("threads", ["-1", "0"])
def test_negative_threads_are_refused(threads, tmp_path, capsys):
    code, _, err = run(["infer", str(tmp_path / "m.onnx"), str(tmp_path), "--threads", threads],
                       capsys)
    assert code == 1 and err.startswith("Error: --threads must be at least 1")


def test_eval_shows_markup_in_class_names_and_paths_literally(tmp_path, capsys):
    data = tmp_path / "data"
    for name, colour in {"[red]x": (220, 30, 30), "[bold]y": (30, 200, 40)}.items():
        (data / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((16, 16, 3), colour, np.uint8)).save(data / name / f"{i}.png")
    (data / "[red]x" / "x[bold]bad.png").write_bytes(b"junk")
    assert main(["train", "--data", str(data), "-e", "1", "-b", "8", "--img-size", "16",
                 "--out-dir", str(tmp_path / "runs"), "--no-report"]) == 0
    capsys.readouterr()
    code = main(["eval", str(tmp_path / "runs" / "basic-cnn" / "best.safetensors"),
                 "--data", str(data), "--out-dir", str(tmp_path / "ev")])
    out, err = capsys.readouterr()
    assert code == 0
    assert "[red]x" in out and "[bold]y" in out
    assert "x[bold]bad.png" in err and err.startswith("Warning: ")
