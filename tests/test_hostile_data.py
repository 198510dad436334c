"""Hostile data: files outside the data root, symlink loops, formula cells, --strict order."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.audit.quarantine import quarantine
from imgcls.cli import main
from imgcls.data.check import check_data
from imgcls.data.csv_loader import load_csv
from imgcls.data.folder import load_folder
from imgcls.errors import DataError
from imgcls.evaluate import Evaluation, write_evaluation
from imgcls.infer import sources
from imgcls.infer.writers import spreadsheet_safe, spreadsheet_value
from imgcls.specs import Preprocess


def image(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)
    return path


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --------------------------------------------------------------------------- outside the root


@pytest.fixture
def escaping_csv(tmp_path) -> Path:
    """data/labels.csv with good rows, a ../ row and a symlink, both outside data/."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    for i in range(3):
        image(data / f"cat{i}.png", 40 + i)
        image(data / f"dog{i}.png", 200 - i)
    outside.mkdir()
    (outside / "notes.jpg").write_bytes(b"my private notes, not an image")
    (outside / "linked.jpg").write_bytes(b"also not an image")
    (data / "link.jpg").symlink_to(outside / "linked.jpg")
    lines = ["path,label", *(f"cat{i}.png,cat" for i in range(3)),
             *(f"dog{i}.png,dog" for i in range(3)), "../outside/notes.jpg,cat", "link.jpg,dog"]
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    return data / "labels.csv"


def test_quarantine_never_moves_files_outside_the_data_root(escaping_csv, tmp_path, capsys):
    outside = tmp_path / "outside"
    code = main(["data", "check", "-d", str(escaping_csv), "--quarantine", str(tmp_path / "q")])
    printed = capsys.readouterr().out
    assert code == 1  # unreadable files were left in place
    assert (outside / "notes.jpg").read_bytes() == b"my private notes, not an image"
    assert (outside / "linked.jpg").is_file() and (escaping_csv.parent / "link.jpg").is_symlink()
    assert "left 2 unreadable files in place" in printed and "notes.jpg" in printed


def test_quarantine_library_refuses_outside_files_and_moves_nothing(escaping_csv, tmp_path):
    data = escaping_csv.parent
    bad = image(data / "inside.png")
    files = [(bad, "test"), (data / ".." / "outside" / "notes.jpg", "test")]
    with pytest.raises(DataError, match="outside the data root"):
        quarantine(files, tmp_path / "q", data)
    assert bad.is_file() and (tmp_path / "outside" / "notes.jpg").is_file()


def test_check_reports_files_resolving_outside_the_root(escaping_csv, tmp_path):
    report = check_data(str(escaping_csv))
    assert sorted(p.name for p in report.outside) == ["link.jpg", "notes.jpg"]
    assert report.to_dict()["outside"] and report.root == str(escaping_csv.parent.resolve())
    assert any("2 files resolve outside" in note for note in report.notes)


def test_csv_loader_can_refuse_outside_rows(escaping_csv):
    with pytest.raises(DataError, match="resolve outside"):
        load_csv(str(escaping_csv), outside="refuse")
    assert len(load_csv(str(escaping_csv)).train) == 8


def test_folder_loader_can_refuse_symlinks_outside(tmp_path):
    root = tmp_path / "folder"
    image(root / "cat" / "a.png")
    image(root / "dog" / "b.png")
    (root / "dog" / "c.png").symlink_to(image(tmp_path / "elsewhere.png"))
    assert any("resolve outside" in note for note in load_folder(str(root)).notes)
    with pytest.raises(DataError, match="resolve outside"):
        load_folder(str(root), outside="refuse")


# --------------------------------------------------------------------------- inference


class FakeRunner:
    """A model with chosen class names: the brightest channel picks the class."""

    def __init__(self, classes: list[str]) -> None:
        self.manifest = {"classes": classes,
                         "preprocess": Preprocess(size=(16, 16)).to_dict()}
        self.providers = ["CPUExecutionProvider"]

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        n = len(self.manifest["classes"])
        picks = pixels.reshape(len(pixels), -1).mean(axis=1).astype(int) % n
        return np.eye(n, dtype=np.float32)[picks]


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    def use(classes: list[str]) -> Path:
        model = tmp_path / "model.onnx"
        model.write_bytes(b"fake")
        monkeypatch.setattr("imgcls.infer.batch.open_model",
                            lambda *a, **k: FakeRunner(classes))
        return model

    return use


def looping_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    for i in range(5):
        image(folder / f"a{i}.png", i)
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "sub").symlink_to("sub")
    (folder / "broken.jpg").symlink_to("nowhere.jpg")
    for i in range(5):
        image(folder / f"z{i}.png", 10 + i)
    return folder


def test_symlink_loop_in_an_input_folder_is_a_per_file_error(fake_model, tmp_path, capsys):
    folder = looping_folder(tmp_path)
    out = tmp_path / "p.csv"
    assert main(["infer", str(fake_model(["a", "b"])), str(folder), "-o", str(out),
                 "--workers", "1", "--decode", "thread"]) == 0
    assert len(rows(out)) == 1 + 10
    errors = {Path(row[0]).name: row[1] for row in rows(tmp_path / "p.csv.errors.csv")[1:]}
    assert set(errors) == {"loop.jpg", "sub", "broken.jpg"}
    assert "symbolic links" in errors["loop.jpg"] and "broken" in errors["broken.jpg"]


def test_sources_report_unstatable_entries_instead_of_raising(tmp_path):
    folder = looping_folder(tmp_path)
    seen: list[str] = []
    paths = list(sources.iter_paths([str(folder)], lambda path, reason: seen.append(path)))
    assert len(paths) == 10 and len(seen) == 3
    with pytest.raises(DataError):
        list(sources.iter_paths([str(folder)]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unlistable_folder_is_a_per_file_error(tmp_path):
    folder = tmp_path / "in"
    image(folder / "a.png")
    (folder / "locked").mkdir()
    (folder / "locked").chmod(0)
    try:
        seen: list[str] = []
        assert len(list(sources.iter_paths([str(folder)], lambda p, r: seen.append(r)))) == 1
        assert seen and "Permission" in seen[0]
    finally:
        (folder / "locked").chmod(0o755)


def test_strict_writes_the_rows_before_the_failing_file(fake_model, tmp_path, capsys):
    good = [image(tmp_path / "imgs" / f"{i:02d}.png", i) for i in range(20)]
    broken = tmp_path / "imgs" / "10b-broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(map(str, [*good[:11], broken, *good[11:]])) + "\n")
    out = tmp_path / "p.csv"
    assert main(["infer", str(fake_model(["a", "b"])), f"@{listing}", "-o", str(out),
                 "--strict", "-b", "4", "--workers", "1", "--decode", "thread"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "10b-broken.png" in err
    assert err.splitlines()[0].count("Error:") == 1
    assert [row[0] for row in rows(out)[1:]] == [str(p) for p in good[:11]]


# --------------------------------------------------------------------------- formula cells


def test_spreadsheet_safe_round_trips():
    for cell in ["=1+1", "+x", "-x", "@SUM(A1)", "\tx", "\rx", "'=x", "'", "plain", "-1",
                 "+2.5", "", "a=b"]:
        assert spreadsheet_value(str(spreadsheet_safe(cell))) == cell
    assert spreadsheet_safe("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert spreadsheet_safe("-1") == "-1" and spreadsheet_safe(3) == 3


def test_predictions_escape_formula_labels_and_resume_reads_paths_back(
        fake_model, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    for i in range(5):
        image(folder / f"=cmd{i}.png", i)
    monkeypatch.chdir(folder)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(f"=cmd{i}.png" for i in range(4)) + "\n")
    model = fake_model(["=HYPERLINK(\"http://x\")", "+x", "@a", "-x"])
    out = tmp_path / "p.csv"
    args = ["infer", str(model), f"@{listing}", "-o", str(out), "-k", "2", "--workers", "1",
            "--decode", "thread"]
    assert main(args) == 0
    cells = [cell for row in rows(out)[1:] for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert "'=HYPERLINK(\"http://x\")" in cells and "'=cmd0.png" in cells
    listing.write_text("\n".join(f"=cmd{i}.png" for i in range(5)) + "\n")
    assert main([*args, "--resume"]) == 0
    written = [row[0] for row in rows(out)[1:]]
    assert len(written) == 5 and len(set(written)) == 5  # nothing classified twice


def test_evaluation_tables_escape_formula_labels(tmp_path):
    classes = ["=cmd|' /C calc'!A0", "@dog"]
    evaluation = Evaluation(classes, ["=a.png", "b.png"], np.array([0, 1]),
                            np.array([[0.2, 0.8], [0.9, 0.1]]), top_k=1)
    paths = write_evaluation(evaluation, tmp_path)
    for name in ("per_class.csv", "misclassified.csv", "confusion.csv"):
        cells = [cell for row in rows(paths[name]) for cell in row]
        assert not any(cell.startswith(("=", "@")) for cell in cells), name
        assert any(cell.startswith("'=cmd") for cell in cells), name
