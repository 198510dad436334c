"""imgcls data prepare: the Kaggle Dogs vs. Cats layout (cat.0.jpg ...) into train/ and val/."""

from __future__ import annotations

import zipfile

import pytest
from PIL import Image

from imgcls.cli import main


@pytest.fixture
def kaggle(tmp_path):
    """The unpacked train/ of the archive: 7 cats, 6 dogs, numbered out of order, and a
    file that is not an image of the layout."""
    folder = tmp_path / "kaggle" / "train"
    folder.mkdir(parents=True)
    for label, colour, count in (("cat", (200, 40, 40), 7), ("dog", (40, 40, 200), 6)):
        for number in reversed(range(count)):
            Image.new("RGB", (12, 10), colour).save(folder / f"{label}.{number * 10}.jpg")
    (folder / "README.txt").write_text("not an image")
    return folder


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_lowest_numbers_train_the_next_validate_and_classes_can_be_renamed(kaggle, tmp_path,
                                                                          capsys):
    out = tmp_path / "cats-dogs"
    before = sorted(p.read_bytes() for p in kaggle.iterdir())
    assert main(["data", "prepare", str(kaggle), "--out-dir", str(out), "--train", "4",
                 "--val", "2", "--rename", "cat=cats", "--rename", "dog=dogs"]) == 0
    # By number, not by text: 10 and 20 come after 0, 100 never before 20.
    assert _names(out / "train" / "cats") == ["cat.0.jpg", "cat.10.jpg", "cat.20.jpg",
                                             "cat.30.jpg"]
    assert _names(out / "val" / "cats") == ["cat.40.jpg", "cat.50.jpg"]
    assert _names(out / "val" / "dogs") == ["dog.40.jpg", "dog.50.jpg"]
    assert sorted(p.read_bytes() for p in kaggle.iterdir()) == before  # only read
    said = capsys.readouterr().out
    assert "train: 4 cats, 4 dogs" in said and "1 files not named" in said
    assert main(["data", "check", "--data", str(out)]) == 0  # what train will read


def test_the_zip_itself_gives_the_same_folders(kaggle, tmp_path):
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in kaggle.iterdir():
            handle.write(path, f"train/{path.name}")
    a, b = tmp_path / "a", tmp_path / "b"
    for source, out in ((kaggle, a), (archive, b)):
        assert main(["data", "prepare", str(source), "--out-dir", str(out), "--train", "3",
                     "--val", "1"]) == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.jpg")) and len(files) == 8
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


@pytest.mark.parametrize(("extra", "message"), [
    (["--train", "6", "--val", "1"], "Too few images for --train 6 --val 1 per class: dog 6"),
    (["--rename", "cat"], "--rename expects prefix=folder"),
    (["--rename", "cat=../x"], "--rename expects prefix=folder"),
])
def test_bad_requests_are_one_line_before_anything_is_written(kaggle, tmp_path, capsys, extra,
                                                              message):
    out = tmp_path / "out"
    assert main(["data", "prepare", str(kaggle), "--out-dir", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


def test_the_output_is_a_new_folder_outside_the_source(kaggle, tmp_path, capsys):
    assert main(["data", "prepare", str(kaggle), "--out-dir", str(kaggle / "split")]) == 1
    assert "inside the input folder" in capsys.readouterr().err
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert main(["data", "prepare", str(kaggle), "--out-dir", str(used), "--train", "1"]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert _names(used) == ["keep.txt"]
    plain = tmp_path / "plain"
    (plain / "cats").mkdir(parents=True)
    assert main(["data", "prepare", str(plain), "--out-dir", str(tmp_path / "o")]) == 1
    assert "needs no preparing" in capsys.readouterr().err
