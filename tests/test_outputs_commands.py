"""Issue 27, item 1 and 2: outputs that would destroy inputs, and outputs that are no file.

Each test runs the real CLI; a refusal is one ``Error:`` line, before any work,
and leaves every file as it was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.cli import main
from imgcls.errors import OutputError
from imgcls.outputs import check_out_dir, check_outputs, check_run_name, input_paths

from .outputs_fixtures import one_error_line, snapshot


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(args: list[str], capsys: pytest.CaptureFixture[str], *roots: Path) -> str:
    """Run ``args``: it must fail with one line and change nothing under ``roots``."""
    before = snapshot(*roots)
    code, _, err = run(args, capsys)
    assert code == 1, err
    assert one_error_line(err), err
    assert snapshot(*roots) == before
    return err


# --------------------------------------------------------------------------- export


def test_export_to_a_fifo_is_refused_and_the_fifo_stays(tiny, tmp_path, capsys):
    node = tmp_path / "node"
    os.mkfifo(node)
    err = refused(["export", "onnx", str(tiny.checkpoint), "-o", str(node)], capsys, tmp_path)
    assert "FIFO" in err and "not a regular file" in err
    assert stat.S_ISFIFO(os.lstat(node).st_mode)
    assert not (tmp_path / "node.parity.json").exists()


def test_export_to_a_device_is_refused(tiny, capsys):
    err = refused(["export", "onnx", str(tiny.checkpoint), "-o", "/dev/null"], capsys,
                  tiny.checkpoint.parent)
    assert "device" in err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not Path("/dev/null.parity.json").exists()


def test_export_over_its_own_checkpoint_is_refused(tiny, capsys):
    err = refused(["export", "onnx", str(tiny.checkpoint), "-o", str(tiny.checkpoint)], capsys,
                  tiny.checkpoint.parent)
    assert "is an input" in err


def test_export_to_a_folder_is_refused_before_work(tiny, tmp_path, capsys):
    err = refused(["export", "onnx", str(tiny.checkpoint), "-o", str(tmp_path)], capsys,
                  tmp_path)
    assert "is a folder" in err


def test_export_into_a_read_only_place_is_one_line(tiny, capsys):
    # /proc takes no new files, even from root: a read-only place on any Linux.
    err = refused(["export", "onnx", str(tiny.checkpoint), "-o", "/proc/imgcls-m.onnx"],
                  capsys, tiny.checkpoint.parent)
    assert "not writable" in err


def test_export_inside_its_calibration_folder_is_refused(tiny, capsys):
    out = tiny.data / "red" / "m.onnx"
    refused(["export", "onnx", str(tiny.checkpoint), "-o", str(out), "--calibration",
             str(tiny.data)], capsys, tiny.data)


# --------------------------------------------------------------------------- infer


def test_infer_output_over_an_input_image_is_refused(tiny, capsys):
    image = tiny.data / "red" / "red_000.png"
    err = refused(["infer", str(tiny.onnx), str(tiny.data), "-o", str(image)], capsys,
                  tiny.data)
    assert "inside the input folder" in err


def test_infer_new_output_inside_the_input_folder_is_refused(tiny, capsys):
    refused(["infer", str(tiny.onnx), str(tiny.data), "-o", str(tiny.data / "p.csv")], capsys,
            tiny.data)
    assert not (tiny.data / "p.csv").exists()


def test_infer_output_through_a_symlink_to_an_input_is_refused(tiny, tmp_path, capsys):
    link = tmp_path / "link.csv"
    link.symlink_to(tiny.data / "red" / "red_001.png")
    refused(["infer", str(tiny.onnx), str(tiny.data / "red" / "red_001.png"), "-o", str(link)],
            capsys, tiny.data, tmp_path)


def test_infer_two_outputs_at_one_path_are_refused(tiny, tmp_path, capsys):
    out = tmp_path / "p.csv"
    for flag in ("--summary-json", "--errors"):
        err = refused(["infer", str(tiny.onnx), str(tiny.data), "-o", str(out), flag, str(out)],
                      capsys, tmp_path)
        assert "same file" in err
    assert not out.exists()


def test_infer_errors_file_cannot_be_the_derived_one_of_another_output(tiny, tmp_path, capsys):
    out = tmp_path / "p.csv"
    refused(["infer", str(tiny.onnx), str(tiny.data), "-o", str(out), "--summary-json",
             str(tmp_path / "p.csv.errors.csv")], capsys, tmp_path)


def test_infer_to_dev_null_is_one_line(tiny, capsys):
    err = refused(["infer", str(tiny.onnx), str(tiny.data), "-o", "/dev/null"], capsys,
                  tiny.data)
    assert "device" in err
    assert not Path("/dev/null.errors.csv").exists()


# --------------------------------------------------------------------------- folders


def test_explain_into_the_image_folder_is_refused(tiny, capsys):
    folder = tiny.data / "red"
    err = refused(["explain", str(tiny.checkpoint), str(folder), "--out-dir", str(folder)],
                  capsys, tiny.data)
    assert "input folder" in err


def test_explain_into_the_folder_of_an_input_file_is_refused(tiny, capsys):
    image = tiny.data / "green" / "green_000.png"
    err = refused(["explain", str(tiny.checkpoint), str(image), "--out-dir", str(image.parent)],
                  capsys, tiny.data)
    assert "holds the input" in err


def test_eval_out_dir_inside_the_data_is_refused(tiny, capsys):
    refused(["eval", str(tiny.onnx), "--data", str(tiny.data), "--out-dir",
             str(tiny.data / "eval")], capsys, tiny.data)


def test_augment_preview_over_an_image_is_refused(tiny, capsys):
    image = tiny.data / "red" / "red_002.png"
    refused(["augment", "preview", "--data", str(tiny.data), "-o", str(image)], capsys,
            tiny.data)


def test_data_audit_out_dir_inside_the_data_is_refused(tiny, capsys):
    refused(["data", "audit", "--data", str(tiny.data), "--out-dir", str(tiny.data / "a")],
            capsys, tiny.data)


def test_data_check_quarantine_that_is_a_file_is_refused(tiny, tmp_path, capsys):
    target = tmp_path / "q"
    target.write_text("keep")
    refused(["data", "check", "--data", str(tiny.data), "--quarantine", str(target)], capsys,
            tmp_path, tiny.data)


# --------------------------------------------------------------------------- the core


def test_check_outputs_units(tmp_path):
    source = tmp_path / "in.png"
    source.write_bytes(b"x")
    hard = tmp_path / "hard.png"
    os.link(source, hard)
    with pytest.raises(OutputError, match="is an input"):
        check_outputs({"-o": hard}, [source])  # a hard link is the same file
    with pytest.raises(OutputError, match="same file"):
        check_outputs({"-o": tmp_path / "a.csv", "--x": tmp_path / "." / "a.csv"})
    check_outputs({"-o": tmp_path / "new" / "deeper" / "a.csv", "--x": None}, [source])
    with pytest.raises(OutputError, match="not a folder"):
        check_outputs({"-o": source / "a.csv"})
    with pytest.raises(OutputError, match="not a folder"):
        check_out_dir("--out-dir", source)
    pattern = tmp_path / "*.png"
    files, folders = input_paths(["shapes", str(pattern), str(source), str(tmp_path)])
    assert sorted(files) == sorted([pattern, hard, source, source]) and folders == [tmp_path]
    with pytest.raises(OutputError, match="is an input"):  # it would match the pattern
        check_outputs({"-o": tmp_path / "new.png"}, [pattern])
    check_outputs({"-o": tmp_path / "new.csv"}, [pattern])


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", ".", ""])
def test_run_names_that_leave_out_dir_are_refused(name):
    with pytest.raises(OutputError, match="must stay inside --out-dir"):
        check_run_name("--name", name)


# --------------------------------------------------------------------------- data check


def test_data_check_show_bounds_duplicate_groups_and_lines(tmp_path, capsys):
    root = tmp_path / "many"
    pixels = np.zeros((8, 8, 3), np.uint8)
    for i in range(60):  # 60 one-image classes, every image the same: one group of 60
        (root / f"class-{i:03d}").mkdir(parents=True)
        Image.fromarray(pixels).save(root / f"class-{i:03d}" / "same.png")
    code, out, err = run(["data", "check", "--data", str(root), "--show", "2", "--workers",
                          "0"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    group = [line for line in lines if " = " in line]
    assert group and all(line.count(" = ") == 1 for line in group)  # two paths, not 60
    assert all("(and 58 more)" in line for line in group)
    assert len(lines) < 60 and max(len(line) for line in lines) < 400
    assert "30 more classes" in out
