"""Issue 27's property: over random layouts of inputs and outputs, no command changes
anything that existed before it except the outputs the user named, and a refused
command exits non-zero with one ``Error:`` line.

Each example builds a fresh layout (a copy of the tiny data, checkpoint and model),
points each output of one command at something hostile (an input, a new file inside
an input folder, a symlink to an input, a FIFO, /dev/null, a folder, another output
of the same command) or at a fresh path, runs the real CLI and compares snapshots.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcls.cli import main

from .outputs_fixtures import one_error_line, snapshot

FILE_KINDS = ("input", "inside", "symlink", "fifo", "devnull", "folder", "other", "fresh")
FOLDER_KINDS = ("input", "inside", "symlink", "fifo", "devnull", "input-folder")
EXAMPLES = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@dataclass
class Layout:
    root: Path
    data: Path  # class folders: an input folder of every command
    checkpoint: Path
    onnx: Path

    @property
    def image(self) -> Path:
        return self.data / "red" / "red_000.png"


def _layout(tiny, base: Path) -> Layout:
    root = Path(tempfile.mkdtemp(dir=base))
    data = root / "data"
    for name in ("red", "green"):
        (data / name).mkdir(parents=True)
        for i in range(2):
            shutil.copy(tiny.data / name / f"{name}_{i:03d}.png", data / name)
    shutil.copy(tiny.checkpoint, root / "best.safetensors")
    shutil.copy(tiny.onnx, root / "model.onnx")
    return Layout(root, data, root / "best.safetensors", root / "model.onnx")


def _file(kind: str, layout: Layout, slot: str, first: str | None) -> str:
    """A path for an output file of ``kind``; ``first`` is the command's first output."""
    fresh = layout.root / f"out-{slot.strip('-')}"
    if kind == "input":
        return str(layout.image)
    if kind == "inside":
        return str(layout.data / "green" / f"new-{slot.strip('-')}.csv")
    if kind == "symlink":
        fresh.symlink_to(layout.image)
    elif kind == "fifo":
        os.mkfifo(fresh)
    elif kind == "devnull":
        return os.devnull
    elif kind == "folder":
        fresh.mkdir()
    elif kind == "other" and first is not None:
        return first
    return str(fresh)


def _folder(kind: str, layout: Layout) -> str:
    """A path for an output folder of ``kind``: each is refused."""
    if kind == "input":
        return str(layout.image)
    if kind == "inside":
        return str(layout.data / "red" / "out")
    if kind == "symlink":
        (layout.root / "link").symlink_to(layout.data)
        return str(layout.root / "link")
    if kind == "fifo":
        os.mkfifo(layout.root / "fifo")
        return str(layout.root / "fifo")
    if kind == "devnull":
        return os.devnull
    return str(layout.data)


def _check(args: list[str], layout: Layout, named: list[str], capsys, must_fail: bool) -> None:
    before = snapshot(layout.root)
    code = main(args)
    err = capsys.readouterr().err
    after = snapshot(layout.root)
    changed = {path for path in before if before[path] != after.get(path)}
    assert not changed - {os.path.normpath(p) for p in named}, (args, changed, err)
    if must_fail or code != 0:
        assert code != 0 and one_error_line(err), (args, err)
        assert after == before, (args, err)


# --------------------------------------------------------------------------- files


@EXAMPLES
@given(kinds=st.lists(st.sampled_from(FILE_KINDS), min_size=3, max_size=3))
def test_infer_outputs_never_destroy_inputs(tiny, tmp_path_factory, capsys, kinds):
    layout = _layout(tiny, tmp_path_factory.getbasetemp())
    output = _file(kinds[0] if kinds[0] != "other" else "fresh", layout, "-o", None)
    summary = _file(kinds[1], layout, "--summary-json", output)
    errors = _file(kinds[2], layout, "--errors", output)
    hostile = set(kinds) - {"fresh"} or None
    args = ["infer", str(layout.onnx), str(layout.data), "-o", output, "--summary-json", summary,
            "--errors", errors, "--workers", "0"]
    _check(args, layout, [output, summary, errors], capsys, must_fail=bool(hostile))


@EXAMPLES
@given(kind=st.sampled_from(FILE_KINDS[:-2]), command=st.sampled_from(["export", "augment"]))
def test_export_and_augment_outputs_never_destroy_inputs(tiny, tmp_path_factory, capsys, kind,
                                                         command):
    layout = _layout(tiny, tmp_path_factory.getbasetemp())
    output = _file(kind, layout, "-o", None)
    if command == "export":
        args = ["export", "onnx", str(layout.checkpoint), "-o", output, "--calibration",
                str(layout.data)]
    else:
        args = ["augment", "preview", "--data", str(layout.data), "-o", output]
    _check(args, layout, [], capsys, must_fail=True)


def test_export_over_the_model_file_it_reads_is_refused(tiny, tmp_path_factory, capsys):
    layout = _layout(tiny, tmp_path_factory.getbasetemp())
    _check(["export", "onnx", str(layout.checkpoint), "-o", str(layout.checkpoint)], layout, [],
           capsys, must_fail=True)


# --------------------------------------------------------------------------- folders


def _folder_command(command: str, layout: Layout, folder: str) -> list[str]:
    data = str(layout.data)
    return {
        "train": ["train", "--data", data, "--out-dir", folder, "--epochs", "1", "--img-size",
                  "16", "--no-report"],
        "explain": ["explain", str(layout.checkpoint), str(layout.data / "red"), "--out-dir",
                    folder],
        "eval": ["eval", str(layout.onnx), "--data", data, "--out-dir", folder],
        "audit": ["data", "audit", "--data", data, "--out-dir", folder],
        "check": ["data", "check", "--data", data, "--quarantine", folder],
    }[command]


@EXAMPLES
@given(kind=st.sampled_from(FOLDER_KINDS),
       command=st.sampled_from(["train", "explain", "eval", "audit", "check"]))
def test_output_folders_never_destroy_inputs(tiny, tmp_path_factory, capsys, kind, command):
    layout = _layout(tiny, tmp_path_factory.getbasetemp())
    if command == "train" and kind == "input":
        kind = "input-folder"  # a run folder under an image file cannot be made anyway
    args = _folder_command(command, layout, _folder(kind, layout))
    _check(args, layout, [], capsys, must_fail=True)


@pytest.mark.parametrize("command", ["explain", "eval"])
def test_output_folder_holding_an_input_file_is_refused(tiny, tmp_path_factory, capsys,
                                                         command):
    layout = _layout(tiny, tmp_path_factory.getbasetemp())
    if command == "explain":
        args = ["explain", str(layout.checkpoint), str(layout.image), "--out-dir",
                str(layout.image.parent)]
    else:  # eval's outputs folder holds a metrics.json the user feeds it as the model
        (layout.root / "ev").mkdir()
        shutil.copy(layout.onnx, layout.root / "ev" / "metrics.json")
        args = ["eval", str(layout.root / "ev" / "metrics.json"), "--data", str(layout.data),
                "--out-dir", str(layout.root / "ev")]
    _check(args, layout, [], capsys, must_fail=True)
