"""A multi-label model end to end: trained on generated multi-label shapes, thresholds in
the manifest and used by infer, ONNX probabilities equal to the checkpoint's, label sets
from the CLI, the Classifier and TTA, and refusals where a command cannot use it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from imgcls.checkpoint import load_checkpoint, save_checkpoint
from imgcls.cli import main
from imgcls.data import load_dataset
from imgcls.images import load_pixels
from imgcls.infer import Classifier
from imgcls.infer.runners import OnnxRunner, TorchRunner
from imgcls.manifest import make_manifest, read_manifest
from imgcls.registry import get_model
from imgcls.train import TrainConfig, fit

ML_SHAPES = {"multilabel": 1, "classes": 3, "train_per_class": 140, "val_per_class": 30,
             "size": 48}


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ml-runs")
    config = TrainConfig(model="resnet-s", model_options={"depth": 8}, data="shapes",
                         data_options=dict(ML_SHAPES), img_size=48, epochs=14, batch_size=32,
                         lr=3e-3, augment="flip",
                         select_metric="map", out=str(out), name="ml", report_cams=False)
    return fit(config)


@pytest.fixture(scope="module")
def ml_onnx(ml_run, tmp_path_factory) -> Path:
    from imgcls.export import export_onnx

    path = tmp_path_factory.mktemp("ml-onnx") / "tags.onnx"
    export_onnx(ml_run.best_path, path)
    return path


def _val():
    loaded = load_dataset("shapes", dict(ML_SHAPES))
    return loaded.classes, [(str(path), labels) for path, labels in loaded.val]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_training_reaches_map_09_and_stores_thresholds(ml_run):
    assert ml_run.best["val_map"] >= 0.9
    metrics = json.loads((ml_run.run_dir / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and metrics["map"] >= 0.9
    manifest = read_manifest(ml_run.best_path)
    assert manifest["task"] == "multilabel"
    assert len(manifest["thresholds"]) == 3 and all(0 < t < 1 for t in manifest["thresholds"])
    assert [row["threshold"] for row in metrics["per_class"]] == manifest["thresholds"]
    report = (ml_run.run_dir / "report.html").read_text()
    assert "Average precision and thresholds" in report and "Co-occurrence" in report
    assert "Precision-recall curves" in report


@pytest.mark.slow
def test_onnx_outputs_the_checkpoints_sigmoid_probabilities(ml_run, ml_onnx):
    _, val = _val()
    runner = OnnxRunner(ml_onnx, "cpu")
    assert runner.manifest["export"]["outputs"] == "probabilities"
    assert runner.manifest["thresholds"] == read_manifest(ml_run.best_path)["thresholds"]
    pixels = np.stack([load_pixels(path, runner.preprocess) for path, _ in val[:32]])
    onnx_probs = runner.probabilities(pixels)
    torch_probs = TorchRunner(ml_run.best_path, "cpu").probabilities(pixels)
    assert np.abs(onnx_probs - torch_probs).max() <= 1e-5
    assert not np.allclose(onnx_probs.sum(1), 1.0)  # sigmoids, not a softmax


@pytest.mark.slow
def test_infer_writes_label_sets_at_the_stored_thresholds(ml_run, ml_onnx, tmp_path, capsys):
    classes, val = _val()
    paths = [path for path, _ in val]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(paths) + "\n")
    out = tmp_path / "preds.csv"
    assert main(["infer", str(ml_onnx), f"@{listing}", "-o", str(out)]) == 0
    rows = _rows(out)
    assert list(rows[0]) == ["path", "labels", *(f"prob_{c}" for c in classes)]
    thresholds = read_manifest(ml_onnx)["thresholds"]
    truth = dict(val)
    right = 0
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in classes]
        expected = [c for c, p, t in zip(classes, probs, thresholds, strict=True) if p >= t]
        assert row["labels"] == ";".join(expected)
        right += row["labels"] == ";".join(classes[i] for i in truth[row["path"]])
    assert right / len(rows) >= 0.75  # exact match of whole label sets
    empty = [row for row in rows if not truth[row["path"]]]
    assert empty and sum(row["labels"] == "" for row in empty) >= len(empty) / 2
    # --threshold replaces every class's threshold
    assert main(["infer", str(ml_onnx), f"@{listing}", "-o", str(tmp_path / "all.csv"),
                 "--threshold", "0"]) == 0
    assert all(row["labels"] == ";".join(classes) for row in _rows(tmp_path / "all.csv"))
    capsys.readouterr()


@pytest.mark.slow
def test_infer_uses_the_thresholds_in_the_manifest(ml_run, tmp_path):
    classes, val = _val()
    loaded = load_checkpoint(ml_run.best_path)
    manifest = dict(loaded.manifest) | {"thresholds": [0.0, 1.0, 0.5]}
    edited = save_checkpoint(tmp_path / "edited.safetensors", loaded.model, manifest)
    out = tmp_path / "preds.jsonl"
    assert main(["infer", str(edited), *[p for p, _ in val[:20]], "-o", str(out),
                 "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        assert classes[0] in record["labels"] and classes[1] not in record["labels"]
        assert (classes[2] in record["labels"]) == (record["probabilities"][classes[2]] >= 0.5)


@pytest.mark.slow
def test_classifier_predicts_label_sets_and_tta_averages_probabilities(ml_run):
    classes, val = _val()
    items = [path for path, _ in val[:8]]
    plain = Classifier.load(ml_run.best_path, device="cpu")
    predictions = plain.predict(items)
    thresholds = np.asarray(read_manifest(ml_run.best_path)["thresholds"])
    for prediction in predictions:
        probs = np.asarray(prediction.class_probs)
        assert prediction.label_set == tuple(np.asarray(classes)[probs >= thresholds])
    flipped = Classifier.load(ml_run.best_path, device="cpu", tta="flip")
    pixels = np.stack([load_pixels(p, plain.preprocess) for p in items])
    mirrored = np.ascontiguousarray(pixels[:, :, ::-1])
    expected = (plain.runner.probabilities(pixels) + plain.runner.probabilities(mirrored)) / 2
    got = np.array([p.class_probs for p in flipped.predict(list(pixels))])
    assert np.abs(got - expected).max() < 1e-6


@pytest.mark.slow
def test_eval_on_a_multilabel_model_reports_map_and_thresholds(ml_run, tmp_path, capsys):
    args = ["eval", str(ml_run.best_path), "--data", "shapes", "--out-dir", str(tmp_path)]
    args += [f"--data-opt={k}={v}" for k, v in ML_SHAPES.items()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "mAP" in out and "threshold" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["map"] >= 0.9 and len(metrics["co_occurrence"]) == 3


def _random_multilabel(path: Path) -> Path:
    spec = get_model("basic-cnn").spec
    model = spec.build(2, image_size=spec.input_size)
    return save_checkpoint(path, model, make_manifest("basic-cnn", {}, ["a", "b"],
                                                      spec.preprocess, task="multilabel",
                                                      thresholds=[0.5, 0.5]))


def _one_error_line(err: str) -> bool:
    return "Traceback" not in err and len(
        [line for line in err.splitlines() if line.startswith("Error")]) == 1


def test_what_a_multilabel_model_cannot_do_is_refused_in_one_line(tmp_path, capsys):
    model = _random_multilabel(tmp_path / "ml.safetensors")
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "x.png")
    assert main(["infer", str(model), str(tmp_path / "x.png"), "-k", "2"]) != 0
    err = capsys.readouterr().err
    assert "--top-k ranks one label per image" in err and _one_error_line(err)
    assert main(["export", "onnx", str(model), "-o", str(tmp_path / "m.onnx"),
                 "--softmax"]) != 0
    err = capsys.readouterr().err
    assert "--softmax does not support multi-label models" in err and _one_error_line(err)
    assert not (tmp_path / "m.onnx").exists()
    from imgcls.errors import ConfigError
    from imgcls.evaluate import evaluate_file

    with pytest.raises(ConfigError, match="does not support multi-label models"):
        evaluate_file(model, str(tmp_path))


@pytest.mark.slow
def test_explain_shows_a_cam_per_predicted_label(ml_run):
    from imgcls.explain import Explainer

    classes, val = _val()
    explainer = Explainer(ml_run.best_path, device="cpu")
    thresholds = np.asarray(read_manifest(ml_run.best_path)["thresholds"])
    for explanation in explainer.explain([path for path, _ in val[:12]]):
        chosen = [c for c, p, t in zip(classes, explanation.probs, thresholds, strict=True)
                  if p >= t]
        assert list(explanation.cams) == (chosen or [classes[int(explanation.probs.argmax())]])
        assert all(cam.shape == explanation.pixels.shape[:2] for cam in explanation.cams.values())


def test_threshold_is_refused_for_a_multiclass_model(tmp_path, capsys):
    spec = get_model("basic-cnn").spec
    model = save_checkpoint(tmp_path / "mc.safetensors", spec.build(2, image_size=spec.input_size),
                            make_manifest("basic-cnn", {}, ["a", "b"], spec.preprocess))
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "x.png")
    assert main(["infer", str(model), str(tmp_path / "x.png"), "--threshold", "0.3"]) != 0
    err = capsys.readouterr().err
    assert "--threshold is for multi-label models" in err and "Traceback" not in err


def test_select_metric_map_needs_multilabel_data(tmp_path, colour_folder):
    from imgcls.errors import ConfigError

    with pytest.raises(ConfigError, match="--select-metric map is for multi-label data"):
        fit(TrainConfig(data=str(colour_folder), epochs=1, select_metric="map",
                        out=str(tmp_path)))


def test_epoch_and_best_lines_of_a_multilabel_run_show_map():
    from types import SimpleNamespace

    from imgcls.train.progress import best_line, epoch_line

    record = {"epoch": 3, "train_loss": 0.2, "train_acc": 0.7, "val_loss": 0.25,
              "val_acc": 0.8, "val_map": 0.912, "val_macro_f1": 0.88}
    assert " mAP 0.912 F1 0.880" in epoch_line(record, True)
    line = best_line(SimpleNamespace(best=record, best_path="runs/ml/best.safetensors"))
    assert line.startswith("best val mAP 0.912 (exact match 80.00%) at epoch 3")
    single = {k: v for k, v in record.items() if k != "val_map"}
    assert best_line(SimpleNamespace(best=single, best_path="b")).startswith(
        "best val accuracy 80.00% at epoch 3")
