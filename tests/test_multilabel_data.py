"""Multi-label data: CSV formats, the shapes multi-label mode, data check, metrics, and
one-line errors for bad label lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcls.cli import main
from imgcls.data import load_dataset
from imgcls.errors import DataError
from imgcls.manifest import make_manifest, validate_manifest
from imgcls.multilabel import (
    average_precision,
    best_threshold,
    choose_thresholds,
    split_labels,
    summary,
)
from imgcls.specs import Preprocess


def _images(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (16, 16), (10 * i, 20, 30)).save(root / name)


def _csv(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    _images(tmp_path, [f"{i}.png" for i in range(6)])
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_label_column_of_separated_labels_is_multilabel_with_empty_rows_kept(tmp_path):
    path = _csv(tmp_path, "path,labels\n0.png,cat;dog\n1.png,dog\n2.png,\n3.png,cat\n"
                          "4.png,bird;cat\n5.png,dog\n")
    loaded = load_dataset(str(path), val_split=0.3)
    assert loaded.task == "multilabel" and loaded.classes == ["bird", "cat", "dog"]
    sets = {p.name: labels for p, labels in loaded.train + loaded.val}
    assert sets == {"0.png": (1, 2), "1.png": (2,), "2.png": (), "3.png": (1,),
                    "4.png": (0, 1), "5.png": (2,)}
    assert any("task: multilabel" in note for note in loaded.notes)


def test_one_0_1_column_per_class_is_multilabel(tmp_path):
    path = _csv(tmp_path, "image,cat,dog\n0.png,1,1\n1.png,0,1\n2.png,0,0\n3.png,1,0\n"
                          "4.png,1,0\n5.png,0,1\n")
    loaded = load_dataset(str(path), val_split=0.3)
    assert loaded.task == "multilabel" and loaded.classes == ["cat", "dog"]
    sets = {p.name: labels for p, labels in loaded.train + loaded.val}
    assert sets["0.png"] == (0, 1) and sets["2.png"] == () and sets["5.png"] == (1,)


def test_the_separator_is_a_data_option_and_task_can_be_forced(tmp_path):
    path = _csv(tmp_path, "path,labels\n0.png,cat|dog\n1.png,dog\n2.png,cat\n3.png,cat\n"
                          "4.png,dog\n5.png,dog\n")
    loaded = load_dataset(str(path), {"sep": "|"}, val_split=0.3)
    assert loaded.task == "multilabel" and loaded.classes == ["cat", "dog"]
    single = _csv(tmp_path / "one", "path,label\n0.png,cat\n1.png,dog\n2.png,cat\n3.png,dog\n"
                                    "4.png,cat\n5.png,dog\n")
    assert load_dataset(str(single), val_split=0.3).task == "multiclass"
    forced = load_dataset(str(single), val_split=0.3, task="multilabel")
    assert forced.task == "multilabel" and all(len(s) == 1 for _, s in forced.train)
    with pytest.raises(DataError, match="cannot be trained as multiclass"):
        load_dataset(str(path), {"sep": "|"}, val_split=0.3, task="multiclass")


@pytest.mark.parametrize(("cell", "message"), [
    ("cat;;dog", "empty name between separators"),
    ("cat;", "empty name between separators"),
    ("cat;dog;cat", "label 'cat' is given twice"),
])
def test_bad_label_lists_are_one_line_errors(tmp_path, capsys, cell, message):
    path = _csv(tmp_path, f"path,labels\n0.png,{cell}\n1.png,dog\n2.png,cat;dog\n")
    code = main(["data", "check", str(path)])
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("Error")]) == 1


def test_a_label_not_among_the_classes_suggests_the_closest(tmp_path, capsys):
    path = _csv(tmp_path, "path,labels\n0.png,cat;dgo\n1.png,dog\n2.png,cat;dog\n")
    with pytest.raises(DataError, match="'dgo' is not among the classes") as info:
        load_dataset(str(path), {"classes": "cat,dog"})
    assert "Did you mean 'dog'?" in info.value.hint
    code = main(["data", "check", str(path), "--data-opt", "classes=cat,dog"])
    err = capsys.readouterr().err
    assert code != 0 and "Did you mean 'dog'?" in err and "Traceback" not in err


def test_split_labels_keeps_order_and_an_empty_cell_is_no_label():
    assert split_labels(" cat ; dog ", ";", "x") == ["cat", "dog"]
    assert split_labels("  ", ";", "x") == []


def test_shapes_multilabel_mode_and_data_check_counts_labels(capsys):
    options = {"multilabel": 1, "classes": 3, "train_per_class": 10, "val_per_class": 4,
               "size": 32}
    loaded = load_dataset("shapes", options)
    assert loaded.task == "multilabel" and loaded.classes == ["circle", "square", "triangle"]
    sizes = {len(labels) for _, labels in loaded.train}
    assert 0 in sizes and max(sizes) >= 2  # images of none and of several shapes
    args = ["data", "check", "shapes"] + [f"--data-opt={k}={v}" for k, v in options.items()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "images without labels" in out and "labels together" in out
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    train_sets = [labels for _, labels in loaded.train]
    assert report["task"] == "multilabel"
    assert report["without_labels"]["train"] == sum(1 for s in train_sets if not s)
    assert report["counts"]["train"]["circle"] == sum(1 for s in train_sets if 0 in s)
    both = sum(1 for s in train_sets if {0, 1} <= set(s))
    assert report["co_occurrence"]["train"].get("circle;square", 0) == both


# --------------------------------------------------------------------------- metrics


def test_average_precision_and_the_f1_best_threshold():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    targets = np.array([1, 0, 1, 0, 0])
    assert average_precision(scores, targets) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([0.9, 0.1]), np.array([1, 0])) == 1.0
    threshold = best_threshold(scores, targets)  # cut after 0.7: F1 = 2*2/(3+2) = 0.8
    assert 0.6 < threshold <= 0.7
    # no positives: the documented fallback
    assert best_threshold(scores, np.zeros(5)) == 0.5
    assert np.isnan(average_precision(scores, np.zeros(5)))


def test_summary_counts_exact_matches_and_skips_classes_without_positives_in_map():
    probs = np.array([[0.9, 0.1, 0.2], [0.8, 0.7, 0.1], [0.1, 0.2, 0.3]])
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=np.float32)
    thresholds = choose_thresholds(probs, targets)
    assert thresholds[2] == 0.5
    found = summary(probs, targets, thresholds, ["a", "b", "c"])
    assert found["map"] == 1.0 and found["exact_match"] == 1.0
    assert found["per_class"][2]["ap"] is None and found["without_labels"] == 1
    worse = summary(probs, targets, [0.95, 0.5, 0.5], ["a", "b", "c"])
    assert worse["exact_match"] == pytest.approx(1 / 3) and worse["micro_f1"] < 1


def test_mixup_and_cutmix_mix_label_vectors():
    from imgcls.data.augment import build_pipeline

    torch.manual_seed(0)
    images = torch.rand(8, 3, 16, 16)
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]] * 2, dtype=torch.float32)
    for spec in ("mixup=1.0", "cutmix=1.0"):
        _, mixed = build_pipeline(spec).mix(images, targets)
        assert mixed.shape == targets.shape
        assert torch.all((mixed >= 0) & (mixed <= 1))
        assert not torch.equal(mixed, targets)  # the label vectors were mixed, not copied
        # rows are mixed with a permutation of the batch: each class keeps its total weight
        assert torch.allclose(mixed.sum(0), targets.sum(0), atol=1e-5)


def test_the_manifest_validates_task_and_thresholds():
    manifest = make_manifest("basic-cnn", {}, ["a", "b"], Preprocess(), task="multilabel",
                             thresholds=[0.3, 0.6])
    assert validate_manifest(manifest, "m")["thresholds"] == [0.3, 0.6]
    from imgcls.errors import ManifestError

    for bad in ({"task": "regression"}, {"thresholds": [0.3]}, {"thresholds": [0.3, 1.5]},
                {"task": "multiclass", "thresholds": [0.3, 0.6]}):
        with pytest.raises(ManifestError):
            validate_manifest(manifest | bad, "m")
    plain = make_manifest("basic-cnn", {}, ["a", "b"], Preprocess())
    assert plain["task"] == "multiclass" and "thresholds" not in plain


def test_the_int8_gate_of_a_multilabel_model_compares_whole_label_sets():
    from types import SimpleNamespace

    from imgcls.export.int8 import _top1

    class Session:
        def __init__(self, outputs: list[list[float]]) -> None:
            self.outputs = np.asarray(outputs)

        def get_inputs(self) -> list:
            return [SimpleNamespace(name="input")]

        def run(self, _names: object, _feed: object) -> list:
            return [self.outputs]

    float_model = Session([[0.9, 0.6, 0.1], [0.8, 0.1, 0.1]])
    int8_model = Session([[0.9, 0.4, 0.1], [0.7, 0.2, 0.1]])  # same top class, other set
    thresholds = (0.5, 0.5, 0.5)
    expected, actual = (_top1(s, [np.zeros(1)], thresholds) for s in (float_model, int8_model))
    assert (expected == actual).all(1).tolist() == [False, True]
    assert (_top1(float_model, [np.zeros(1)]) == _top1(int8_model, [np.zeros(1)])).all()
