"""The CLI end to end, and clear one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imgcls import __version__
from imgcls.cli import main

from .conftest import write_class_folders


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"imgcls {__version__}"


def test_models_and_plugins_listings(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "basic-cnn" in out and "deep-cnn" in out
    code, out, _ = run(["plugins"], capsys)
    assert code == 0 and "imgcls.default_plugins.models" in out
    code, out, _ = run(["plugins", "--augmentations"], capsys)
    assert code == 0 and "shear" in out


def test_train_export_infer_through_the_cli(tmp_path, colour_folder, capsys):
    code, out, _ = run(["train", "--data", str(colour_folder), "--epochs", "2", "-b", "8",
                        "--out", str(tmp_path / "runs"), "--name", "cli"], capsys)
    assert code == 0, out
    assert "epoch   2" in out and "val loss" in out
    checkpoint = tmp_path / "runs" / "cli" / "best.safetensors"
    onnx_path = tmp_path / "m.onnx"
    code, out, err = run(["export", "onnx", str(checkpoint), "-o", str(onnx_path)], capsys)
    assert code == 0, err
    assert "max |Δlogit|" in out and onnx_path.is_file()
    code, out, _ = run(["infer", str(onnx_path), str(colour_folder / "red")], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "path,label,confidence" and len(lines) == 13


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "/no/such/folder"], "not found"),
    (["train", "--model", "basic-cn"], "Did you mean 'basic-cnn'"),
    (["train", "--augment", "flip,sheer=0.2"], "Unknown augmentation 'sheer'"),
    (["train", "--epochs", "-1"], "--epochs must be at least 1"),
    (["train", "--device", "tpu"], "Unknown device"),
    (["export", "onnx", "pyproject.toml"], "not an imgcls checkpoint"),
    (["infer", "missing.onnx", "."], "Model file not found"),
])
def test_bad_input_is_one_clear_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    code, _, err = run(args + (["--out", str(tmp_path)] if args[0] == "train" else []), capsys)
    assert code == 1
    assert err.startswith("Error: ") and message in err
    assert "Traceback" not in err


def test_empty_and_single_class_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path)],
                       capsys)
    assert code == 1 and "No images" in err
    write_class_folders(tmp_path / "one", {"cat": (9, 9, 9)}, per_class=3)
    code, _, err = run(["train", "--data", str(tmp_path / "one"), "--out", str(tmp_path)],
                       capsys)
    assert code == 1 and "at least 2" in err


def test_console_script_errors_have_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "imgcls", "train", "--data",
                             str(tmp_path / "nope")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "Hint: " in result.stderr
