"""Batch inference: CSV/JSONL contents, checkpoints and .onnx alike, unreadable images."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from imgcls.cli import main
from imgcls.data import load_dataset
from imgcls.infer import Classifier, iter_inputs

from .helpers import TINY_SHAPES


@pytest.fixture
def val_folder(tmp_path, trained):
    """A few val images per class (copied, with names that contain the true class)."""
    loaded = load_dataset("shapes", dict(TINY_SHAPES))
    folder = tmp_path / "images with space"
    (folder / "sub").mkdir(parents=True)
    for i, (path, label) in enumerate(loaded.val[::4]):
        target = folder / ("sub" if i % 2 else "") / f"{loaded.classes[label]}_{i}.png"
        shutil.copy(path, target)
    return folder


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_infer_csv_contents(exported, val_folder, tmp_path, trained):
    out = tmp_path / "preds.csv"
    assert main(["infer", str(exported), str(val_folder), "-o", str(out), "-k", "2"]) == 0
    rows = read_csv(out)
    assert len(rows) == len(list(iter_inputs([val_folder])))
    assert list(rows[0]) == ["path", "label", "confidence", "label_2", "confidence_2"]
    for row in rows:
        assert row["label"] in trained.classes and row["label_2"] in trained.classes
        assert row["label"] != row["label_2"]
        assert 0.0 <= float(row["confidence_2"]) <= float(row["confidence"]) <= 1.0
    correct = sum(row["label"] in row["path"].rsplit("/", 1)[-1] for row in rows)
    assert correct / len(rows) >= 0.6


def test_checkpoint_and_onnx_agree(exported, trained, val_folder, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["infer", str(exported), str(val_folder), "-o", str(a), "-f", "jsonl"]) == 0
    assert main(["infer", str(trained.best_path), str(val_folder), "-o", str(b),
                 "-f", "jsonl"]) == 0
    rows_a = [json.loads(line) for line in a.read_text().splitlines()]
    rows_b = [json.loads(line) for line in b.read_text().splitlines()]
    assert [r["label"] for r in rows_a] == [r["label"] for r in rows_b]
    pairs = zip(rows_a, rows_b, strict=True)
    assert all(abs(x["confidence"] - y["confidence"]) < 1e-4 for x, y in pairs)


def test_unreadable_images_are_listed_and_do_not_stop_the_run(exported, val_folder, tmp_path,
                                                              capsys):
    (val_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (val_folder / "empty.png").write_bytes(b"")
    out = tmp_path / "preds.csv"
    assert main(["infer", str(exported), str(val_folder), "-o", str(out)]) == 0
    rows = read_csv(out)
    errors = read_csv(tmp_path / "preds.csv.errors.csv")
    assert sorted(row["path"].rsplit("/", 1)[-1] for row in errors) == ["broken.jpg", "empty.png"]
    assert all(row["error"] for row in errors)
    assert len(rows) == len(list(iter_inputs([val_folder]))) - 2
    assert "broken.jpg" in capsys.readouterr().err


def test_glob_input_and_missing_input(exported, val_folder, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert main(["infer", str(exported), str(val_folder / "*.png"), "-o", str(out)]) == 0
    assert len(read_csv(out)) == len(list(val_folder.glob("*.png")))
    assert main(["infer", str(exported), str(tmp_path / "nothing-here")]) == 1
    assert "No images found" in capsys.readouterr().err


def test_classifier_api(exported, val_folder):
    from PIL import Image

    classifier = Classifier.load(exported)
    paths = sorted(val_folder.glob("*.png"))[:3]
    by_path = classifier.predict([str(p) for p in paths], top_k=2)
    by_image = classifier.predict([Image.open(p) for p in paths], top_k=2)
    assert [p.labels for p in by_path] == [p.labels for p in by_image]
    assert len(by_path[0].labels) == 2


def test_a_folder_labelled_for_another_model_prints_what_the_model_knows(exported, trained,
                                                                          tmp_path, capsys):
    # A shapes model on a cats-vs-dogs folder: it still answers, and says what it is.
    from .helpers import write_class_folders

    photos = write_class_folders(tmp_path / "cats-dogs", {"cats": (200, 120, 60),
                                                          "dogs": (60, 110, 200)}, per_class=1)
    assert main(["infer", str(exported), str(photos)]) == 0
    err = capsys.readouterr().err
    assert (f"{photos} holds the classes cats, dogs, none of them a class of {exported}: that "
            "model was trained on shapes (3 classes: circle, square, triangle)") in err
    assert "2 images classified" in err
    one = next((photos / "cats").iterdir())
    assert main(["infer", str(exported), str(one)]) == 0  # a file: its folder's siblings
    err = capsys.readouterr().err
    assert "none of them a class" in err and "1 image classified" in err
    shutil.move(photos / "dogs", photos / "circle")  # one class of the model: labelled for it
    assert main(["infer", str(exported), str(photos)]) == 0
    assert "none of them a class" not in capsys.readouterr().err
