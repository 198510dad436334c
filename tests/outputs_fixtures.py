"""A tiny data folder, checkpoint and ONNX model shared by the tests/test_outputs_*.py files.

Made once per session (about ten seconds); the tests never write into them, and
check that they did not (``snapshot``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgcls.cli import main

from .helpers import write_class_folders

TINY_TRAIN = ["--epochs", "1", "-b", "4", "--img-size", "16", "--augment", "none",
              "--no-report", "--cache", "none", "--workers", "0", "--val-split", "0.5"]


@dataclass(frozen=True)
class Tiny:
    data: Path  # red/ and green/, six 16 px images each
    checkpoint: Path
    onnx: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    root = tmp_path_factory.mktemp("outputs-tiny")
    data = write_class_folders(root / "data", {"red": (220, 30, 30), "green": (30, 200, 40)},
                               per_class=6, size=16)
    assert main(["train", "--data", str(data), "--out-dir", str(root / "runs"), "--name", "t",
                 *TINY_TRAIN]) == 0
    checkpoint = root / "runs" / "t" / "best.safetensors"
    onnx = root / "model.onnx"
    assert main(["export", "onnx", str(checkpoint), "-o", str(onnx)]) == 0
    return Tiny(data, checkpoint, onnx)


def snapshot(*roots: Path) -> dict[str, tuple[str, str]]:
    """Every path under ``roots`` (symlinks not followed): its kind and content hash."""
    seen: dict[str, tuple[str, str]] = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                mode = os.lstat(path).st_mode
                if stat.S_ISREG(mode):
                    with open(path, "rb") as handle:
                        seen[path] = ("file", hashlib.sha256(handle.read()).hexdigest())
                elif stat.S_ISLNK(mode):
                    seen[path] = ("link", os.readlink(path))
                else:
                    seen[path] = ("dir" if stat.S_ISDIR(mode) else "special", "")
    return seen


def one_error_line(err: str) -> bool:
    """Exactly one ``Error:`` line (and at most a hint), no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    return len(errors) == 1 and "Traceback" not in err and all(
        line.startswith(("Error:", "Hint:", "Warning:")) for line in lines)
