"""imgcls eval: a checkpoint or an .onnx file on labelled images, with all its outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from imgcls.cli import main
from imgcls.data.splits import SPLITS, select_split
from imgcls.errors import ConfigError, DataError
from imgcls.evaluate import Evaluation, evaluate_file, select_samples
from imgcls.specs import LoadedDataset

from .helpers import write_class_folders


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_eval_writes_every_output(kind, trained, exported, tmp_path, capsys):
    model = trained.best_path if kind == "checkpoint" else exported
    data = json.loads((trained.run_dir / "config.json").read_text())
    out = tmp_path / "eval"
    code = main(["eval", str(model), "--data", "shapes", "--out-dir", str(out), "-k", "2",
                 *[f"--data-opt={k}={v}" for k, v in data["data_options"].items()]])
    printed = capsys.readouterr().out
    assert code == 0
    assert "precision" in printed and "macro-F1" in printed and "top2" in printed
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["images"] == 90 and summary["accuracy"] == pytest.approx(
        trained.best["val_acc"])
    assert [row[0] for row in read_csv(out / "per_class.csv")] == ["class", *trained.classes]
    confusion = read_csv(out / "confusion.csv")
    assert confusion[0][1:] == trained.classes
    assert sum(int(v) for row in confusion[1:] for v in row[1:]) == 90
    mistakes = read_csv(out / "misclassified.csv")
    assert mistakes[0] == ["path", "true", "predicted", "confidence"]
    assert len(mistakes) - 1 == round(90 * (1 - summary["accuracy"]))
    assert all(row[1] != row[2] for row in mistakes[1:])
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_without_data_uses_the_data_the_model_was_trained_on(exported, trained, tmp_path,
                                                                   capsys):
    # The tutorial's `imgcls eval CHECKPOINT`: the manifest records the data and its options.
    code = main(["eval", str(exported), "--out-dir", str(tmp_path / "eval")])
    printed = capsys.readouterr().out
    assert code == 0 and printed.startswith("data: shapes (the model's training data")
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary["images"] == 90 and summary["accuracy"] == pytest.approx(
        trained.best["val_acc"])


def test_eval_on_a_plain_folder_uses_every_image_and_skips_unreadable(trained, tmp_path):
    colours = {"circle": (200, 200, 200), "square": (10, 10, 10)}
    folder = write_class_folders(tmp_path / "imgs", colours, per_class=4)
    (folder / "circle" / "broken.png").write_bytes(b"nope")
    evaluation, manifest = evaluate_file(trained.best_path, str(folder))
    assert len(evaluation.labels) == 8 and len(evaluation.failures) == 1
    assert manifest["classes"] == trained.classes
    # Labels are re-indexed into the model's class order.
    assert sorted(set(evaluation.labels.tolist())) == [0, 1]


def test_eval_refuses_classes_the_model_does_not_know(trained, tmp_path, capsys):
    folder = write_class_folders(tmp_path / "imgs", {"circle": (9, 9, 9), "moon": (1, 2, 3)},
                                 per_class=2)
    with pytest.raises(DataError, match="moon"):
        evaluate_file(trained.best_path, str(folder))
    assert main(["eval", str(trained.best_path), "--data", str(folder), "--split", "val"]) == 1
    assert "no validation split" in capsys.readouterr().err


def test_evaluation_summary_and_mistake_order():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    evaluation = Evaluation(["a", "b", "c"], ["p0", "p1", "p2", "p3"], np.array([0, 1, 1, 0]),
                            probs, top_k=2)
    summary = evaluation.summary()
    assert summary["accuracy"] == 0.5 and summary["top2_accuracy"] == 0.75
    assert [m["path"] for m in evaluation.misclassified()] == ["p3", "p2"]
    assert evaluation.misclassified()[0] == {"path": "p3", "true": "a", "predicted": "c",
                                             "confidence": 0.7}


def test_splits_are_picked_by_the_library_and_an_unknown_one_is_an_error(tmp_path):
    train, val = [(tmp_path / "t.png", 0)], [(tmp_path / "v.png", 1)]
    loaded = LoadedDataset(["a", "b"], train, val)
    assert select_split(loaded, "auto", "d") == val
    assert select_split(loaded, "val", "d") == val
    assert select_split(loaded, "train", "d") == train
    assert select_split(loaded, "all", "d") == train + val
    no_val = LoadedDataset(["a", "b"], train)
    assert select_split(no_val, "auto", "d") == train
    assert select_split(no_val, "all", "d") == train
    with pytest.raises(DataError, match="no validation split"):
        select_split(no_val, "val", "d")
    # An unknown split used to fall through to "train" without a word.
    with pytest.raises(ConfigError, match="Unknown split 'tran'") as caught:
        select_split(loaded, "tran", "d")
    assert all(name in caught.value.hint for name in SPLITS)


def test_an_unknown_split_fails_before_any_work(tmp_path, capsys):
    # Neither the data nor the model exists: the split is checked first.
    with pytest.raises(ConfigError, match="Unknown split"):
        select_samples(str(tmp_path / "none"), {}, "validation", ["a", "b"])
    with pytest.raises(ConfigError, match="Unknown split"):
        evaluate_file(tmp_path / "none.onnx", str(tmp_path / "none"), split="validation")
    assert main(["eval", str(tmp_path / "none.onnx"), "--data", "shapes", "--split", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: Unknown split 'x'") and "auto, val, train, all" in err


def test_training_validation_and_eval_share_one_loop():
    """train's validate and evaluate.predict_decoded both run evaluate.batch_logits: the same
    probabilities, in eval mode, leaving the caller's grad mode alone between batches."""
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from imgcls.data.cache import DecodedImages
    from imgcls.data.loader import DeviceNormaliser, make_loader
    from imgcls.evaluate import batch_logits, predict_decoded
    from imgcls.registry import get_model
    from imgcls.train.loop import validate
    from imgcls.train.precision import Precision

    spec = get_model("basic-cnn").spec
    torch.manual_seed(0)
    model = spec.build(3, image_size=(32, 32)).train()
    rng = np.random.default_rng(0)
    images = DecodedImages(rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
                           np.arange(10) % 3, [Path(f"{i}.png") for i in range(10)])
    cpu = torch.device("cpu")
    normalize = DeviceNormaliser(spec.preprocess, cpu)
    for _, _ in batch_logits(model, make_loader(images, 4), normalize):
        assert torch.is_grad_enabled() and not model.training
    probs = predict_decoded(model, images, spec.preprocess, cpu, batch_size=4)
    metrics = validate(model, make_loader(images, 3), normalize, Precision("cpu"), 3, 1)
    expected = F.nll_loss(torch.log(torch.from_numpy(probs)), torch.from_numpy(images.labels),
                          reduction="sum").item()
    assert probs.shape == (10, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert abs(metrics.loss_sum - expected) < 1e-3
