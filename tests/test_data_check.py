"""imgcls data check: the report on a folder full of oddities, quarantine, and the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.audit.quarantine import MANIFEST, quarantine, quarantine_root
from imgcls.cli import main
from imgcls.data.check import check_data, inspect_file
from imgcls.errors import DataError

from .test_images import _bilevel_png


def photo(path: Path, seed: int, size: tuple[int, int] = (48, 40), fmt: str | None = None,
          mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if mode == "RGB" else image.convert(mode)).save(path, fmt)
    return path


@pytest.fixture
def messy(tmp_path) -> Path:
    """train/ and val/ with one file of every oddity the decoder handles or refuses."""
    root = tmp_path / "messy"
    for s, (split, count) in enumerate((("train", 3), ("val", 2))):
        for c, label in enumerate(("cats", "dogs")):
            for i in range(count):
                photo(root / split / label / f"{label}{i}.jpg", seed=100 + 10 * s + 5 * c + i)
    cats, dogs = root / "train" / "cats", root / "train" / "dogs"
    good = (cats / "cats0.jpg").read_bytes()
    (cats / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (cats / "zero.jpg").write_bytes(b"")
    (cats / "notes.jpg").write_text("not a picture\n")
    (dogs / "bomb.png").write_bytes(_bilevel_png(14_000, 14_000))
    photo(cats / "png_named.jpg", 1, fmt="PNG")
    photo(dogs / "cmyk.jpg", 2, mode="CMYK")
    Image.fromarray(np.full((40, 40), 40_000, dtype=np.uint16)).save(dogs / "deep.png")
    photo(dogs / "la.png", 3, mode="LA")
    palette = Image.new("P", (40, 40))
    palette.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    palette.save(dogs / "palette.png", transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 40), (9, 9, 9)).save(dogs / "rotated.jpg", exif=exif.tobytes())
    photo(dogs / "one.png", 4, size=(1, 1))
    shutil.copy(cats / "cats1.jpg", cats / "cats1_copy.jpg")
    shutil.copy(cats / "cats2.jpg", root / "val" / "dogs" / "leaked.jpg")
    return root


def test_report_on_every_oddity(messy):
    report = check_data(str(messy), workers=2)
    assert report.loader == "folder" and report.classes == ["cats", "dogs"]
    assert report.files == 3 * 2 + 2 * 2 + 13
    unreadable = {path.name: reason for path, reason in report.unreadable}
    assert set(unreadable) == {"truncated.jpg", "zero.jpg", "notes.jpg", "bomb.png"}
    assert "truncated" in unreadable["truncated.jpg"]
    assert "empty" in unreadable["zero.jpg"]
    assert "not an image" in unreadable["notes.jpg"]
    assert "decompression bomb" in unreadable["bomb.png"]
    assert [(p.name, fmt) for p, fmt in report.mismatched] == [("png_named.jpg", "PNG")]
    modes = {mode: sorted(p.name for p in paths) for mode, paths in report.modes.items()}
    assert modes["CMYK"] == ["cmyk.jpg"] and modes["LA"] == ["la.png"]
    assert modes["P"] == ["palette.png"] and "deep.png" in modes[next(m for m in modes
                                                                       if m.startswith("I"))]
    assert [(p.name, size) for p, size in report.tiny] == [("one.png", (1, 1))]
    assert [[p.name for p in group] for group in report.duplicates] == [
        ["cats1.jpg", "cats1_copy.jpg"], ["cats2.jpg", "leaked.jpg"]]
    assert [[p.name for p in group] for group in report.leaks] == [["cats2.jpg", "leaked.jpg"]]
    assert [[p.name for p in group] for group in report.conflicts] == [["cats2.jpg",
                                                                         "leaked.jpg"]]
    assert report.counts == {"train": {"cats": 5, "dogs": 9}, "val": {"cats": 2, "dogs": 3}}
    json.dumps(report.to_dict())  # serialisable as it is


def test_a_clean_file_and_its_facts(messy):
    rotated = inspect_file(messy / "train" / "dogs" / "rotated.jpg", "train", "dogs")
    assert not rotated.error and rotated.format == "JPEG" and rotated.size == (60, 40)
    assert len(rotated.sha256) == 64


def test_csv_data_sets_are_checked_too(messy, tmp_path):
    rows = ["path,label,split", "train/cats/cats0.jpg,cat,train", "train/dogs/dogs0.jpg,dog,train",
            "val/cats/cats0.jpg,cat,val", "train/cats/cats0.jpg,cat,val", "gone.jpg,dog,train"]
    table = messy / "labels.csv"
    table.write_text("\n".join(rows) + "\n")
    report = check_data(str(table))
    assert report.loader == "csv" and report.files == 4
    assert any("1 rows skipped, file not found" in note for note in report.notes)
    assert [[p.name for p in group] for group in report.leaks] == [["cats0.jpg", "cats0.jpg"]]


def test_quarantine_moves_with_a_manifest_and_never_deletes(messy, tmp_path):
    report = check_data(str(messy))
    contents = {path.name: path.read_bytes() for path, _ in report.unreadable}
    target = tmp_path / "quarantine"
    moved = quarantine(report.unreadable, target, messy)
    assert len(moved) == 4 and not any(path.exists() for path, _ in report.unreadable)
    assert (target / "train" / "cats" / "zero.jpg").is_file()
    for item in moved:
        assert item.quarantined.read_bytes() == contents[item.original.name]
    with open(target / MANIFEST, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {Path(r["original"]).name for r in rows} == set(contents)
    assert all(Path(r["quarantined"]).is_file() and r["reason"] and r["moved_at"] for r in rows)
    # A second file of the same name is kept next to the first, not over it.
    (messy / "train" / "cats" / "zero.jpg").write_bytes(b"")
    again = quarantine([(messy / "train" / "cats" / "zero.jpg", "empty")], target, messy)
    assert again[0].quarantined.name == "zero-2.jpg"
    with open(target / MANIFEST, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 5
    assert check_data(str(messy)).unreadable == []


def test_quarantine_inside_a_folder_data_set_is_refused(messy):
    with pytest.raises(DataError, match="inside the data folder"):
        quarantine_root(str(messy), "folder", messy / "bad")
    assert quarantine_root(str(messy / "x.csv"), "csv", messy / "bad") == messy.resolve()


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_data_check_command(messy, tmp_path, capsys):
    code, out, _ = run(["data", "check", "--data", str(messy), "--show", "2"], capsys)
    assert code == 1  # unreadable files left in place
    assert "unreadable files: 4" in out and "... and 2 more" in out
    assert "duplicates across train and val (leakage): 1" in out and "CMYK 1" in out
    code, out, _ = run(["data", "check", "-d", str(messy), "--quarantine", str(tmp_path / "q")],
                       capsys)
    assert code == 0 and "moved 4 unreadable files" in out
    code, out, _ = run(["data", "check", "--data", str(messy), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["unreadable"] == [] and report["counts"]["val"]["dogs"] == 3
    code, _, err = run(["data", "check", "--data", str(messy), "--quarantine", str(messy / "q")],
                       capsys)
    assert code == 1 and err.startswith("Error: ") and "inside the data folder" in err


def test_data_check_on_clean_data(tmp_path, capsys):
    for label in ("a", "b"):
        for i in range(3):
            photo(tmp_path / "clean" / label / f"{i}.png", seed=i + 10 * (label == "b"))
    code, out, _ = run(["data", "check", "--data", str(tmp_path / "clean")], capsys)
    assert code == 0 and "no problems found" in out


def test_augment_preview_command(messy, tmp_path, capsys):
    output = tmp_path / "grid.png"
    code, out, _ = run(["augment", "preview", "--data", str(messy / "val"), "-o", str(output),
                        "-n", "2", "--variants", "3", "-a", "strong,mixup"], capsys)
    assert code == 0 and "wrote" in out
    with Image.open(output) as grid:
        # basic-cnn's 64x64 input shown at 128 px: 4 columns, 2 rows, 4 px gutters
        assert grid.size == (4 * 132 + 4, 2 * 132 + 4)
    code, _, err = run(["augment", "preview", "-d", str(messy / "val"), "-o", str(output), "-a",
                        "flip,rotat=3"], capsys)
    assert code == 1 and "Unknown augmentation 'rotat'" in err
