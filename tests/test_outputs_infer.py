"""Issue 27 for imgcls infer, export and the Classifier: locks, repairs, names, signals."""

from __future__ import annotations

import csv
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.cli import main
from imgcls.errors import ConfigError, DecodeError
from imgcls.infer import Classifier

from .outputs_fixtures import one_error_line


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.reader(handle))


def _images(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            folder / name, format="PNG")
    return folder


# --------------------------------------------------------------------------- --resume


def test_a_second_infer_resume_on_one_output_is_refused(tiny, tmp_path, capsys):
    out = tmp_path / "p.csv"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another imgcls infer --resume is writing it
        code = main(["infer", str(tiny.onnx), str(tiny.data), "-o", str(out), "--resume"])
        err = capsys.readouterr().err
        assert code == 1 and one_error_line(err) and "another imgcls process" in err
        assert out.read_bytes() == b""
    finally:
        os.close(fd)
    assert main(["infer", str(tiny.onnx), str(tiny.data), "-o", str(out), "--resume"]) == 0
    assert len(rows(out)) == 1 + 12


def test_resume_repairs_a_cut_quoted_path_with_a_newline(tmp_path, tiny, capsys):
    folder = _images(tmp_path / "imgs", ["a.png", "new\nline.png", "z.png"])
    out = tmp_path / "p.csv"
    assert main(["infer", str(tiny.onnx), str(folder), "-o", str(out)]) == 0
    full = out.read_bytes()
    start = full.index(b'"')  # the quoted path with the newline
    cut = full.index(b"\n", start) + 1  # cut just after the newline inside the quotes
    for end in (cut, cut + 3):
        out.write_bytes(full[:end])
        capsys.readouterr()
        assert main(["infer", str(tiny.onnx), str(folder), "-o", str(out), "--resume"]) == 0
        table = rows(out)
        assert table[0] == ["path", "label", "confidence"]
        assert sorted(row[0] for row in table[1:]) == sorted(
            str(folder / name) for name in ["a.png", "new\nline.png", "z.png"])
        assert all(len(row) == 3 for row in table)


def test_infer_non_utf8_file_names_are_written_as_their_bytes(tmp_path, tiny, capsys):
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1, not UTF-8
    folder = _images(tmp_path / "imgs", [odd, "plain.png"])
    (folder / os.fsdecode(b"bad\xff.png")).write_bytes(b"not an image")
    out = tmp_path / "p.csv"
    assert main(["infer", str(tiny.onnx), str(folder), "-o", str(out)]) == 0
    assert b"caf\xe9.png" in out.read_bytes()
    assert b"bad\xff.png" in (tmp_path / "p.csv.errors.csv").read_bytes()
    assert len(rows(out)) == 3
    capsys.readouterr()
    assert main(["infer", str(tiny.onnx), str(folder), "-o", str(out), "--resume"]) == 0
    assert "2 already done" in capsys.readouterr().out
    assert len(rows(out)) == 3


# --------------------------------------------------------------------------- Classifier


def test_classifier_refuses_a_fifo(tiny, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(DecodeError, match="not a regular file"):
        Classifier.load(tiny.onnx).predict(str(fifo))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 300.0, -1.0])
def test_classifier_refuses_nonfinite_or_out_of_range_floats(tiny, value):
    pixels = np.full((16, 16, 3), 0.5, np.float32)
    pixels[3, 4, 1] = value
    with pytest.raises(DecodeError):
        Classifier.load(tiny.onnx).predict(pixels)
    assert Classifier.load(tiny.onnx).predict(np.full((16, 16, 3), 0.5))[0].label


@pytest.mark.parametrize("options", [{"top_k": 0}, {"top_k": -1}, {"batch_size": 0},
                                     {"batch_size": -3}])
def test_classifier_top_k_and_batch_size_below_one(tiny, options):
    classifier = Classifier.load(tiny.onnx)
    image = str(tiny.data / "red" / "red_000.png")
    with pytest.raises(ConfigError, match="at least 1"):
        classifier.predict(image, **options)
    with pytest.raises(ConfigError, match="at least 1"):
        classifier.stream([image], **options)


# --------------------------------------------------------------------------- SIGTERM

# The child sends itself SIGTERM at a chosen moment; default signal handling first,
# so the test does not depend on what the runner's process inherited.
CHILD = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
{patch}
from imgcls.cli import main
sys.exit(main(sys.argv[1:]))
"""


def term_on_call(module: str, name: str, call: int) -> str:
    """A patch for the child: ``module.name``'s ``call``-th call first sends it SIGTERM."""
    return f"""
import {module} as patched
real, calls = patched.{name}, []
def replacement(*args):
    calls.append(args)
    if len(calls) == {call}:
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*args)
patched.{name} = replacement
"""


TERM_ON_FIRST_FSYNC = term_on_call("os", "fsync", 1)
TERM_AFTER_THREE_ROWS = term_on_call("imgcls.infer.writers", "csv_row", 4)


def _child(patch: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD.format(patch=patch), *args],
                          capture_output=True, text=True, timeout=300)


def test_sigterm_during_export_leaves_no_temp_files(tiny, tmp_path):
    out = tmp_path / "m.onnx"
    done = _child(TERM_ON_FIRST_FSYNC, ["export", "onnx", str(tiny.checkpoint), "-o", str(out)])
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr and "Terminated" in done.stderr
    assert sorted(os.listdir(tmp_path)) == []  # no model, no report, no .tmp


def test_sigterm_stops_infer_like_ctrl_c(tiny, tmp_path):
    out = tmp_path / "p.csv"
    args = ["infer", str(tiny.onnx), str(tiny.data), "-o", str(out), "-b", "1",
            "--workers", "1"]
    done = _child(TERM_AFTER_THREE_ROWS, args)
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr and "Terminated" in done.stderr
    assert 1 + 3 <= len(rows(out)) < 1 + 12  # the rows written before it are whole
    assert all(len(row) == 3 for row in rows(out))
    assert main([*args, "--resume"]) == 0
    assert sorted(row[0] for row in rows(out)[1:]) == sorted(
        str(path) for path in tiny.data.rglob("*.png"))
