"""Test-time augmentation (--tta flip): each image and its mirror image, logits averaged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imgcls.checkpoint import load_checkpoint
from imgcls.cli import main
from imgcls.errors import ConfigError
from imgcls.infer import Classifier
from imgcls.infer.runners import open_model


def _pixels(trained, n: int = 6, seed: int = 0) -> np.ndarray:
    height, width = load_checkpoint(trained.best_path).preprocess.size
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _logits(trained, pixels: np.ndarray) -> torch.Tensor:
    loaded = load_checkpoint(trained.best_path)
    with torch.no_grad():
        return loaded.model.eval()(torch.from_numpy(loaded.preprocess.apply(pixels))).double()


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_flip_tta_is_the_softmax_of_the_averaged_logits(kind, trained, exported):
    pixels = _pixels(trained)
    expected = torch.softmax((_logits(trained, pixels)
                              + _logits(trained, pixels[:, :, ::-1].copy())) / 2, 1).numpy()
    model = trained.best_path if kind == "checkpoint" else exported
    probs = open_model(model, tta="flip").probabilities(pixels)
    assert np.abs(probs - expected).max() < (1e-6 if kind == "checkpoint" else 1e-4)
    plain = open_model(model).probabilities(pixels)
    assert np.abs(probs - plain).max() > 1e-3  # random pixels are not mirror-symmetric


def test_flip_tta_changes_nothing_on_mirror_symmetric_images(trained):
    half = _pixels(trained, n=4, seed=1)
    width = half.shape[2]
    symmetric = np.concatenate([half[:, :, : width // 2], half[:, :, : width // 2][:, :, ::-1]],
                               axis=2)
    flipped = open_model(trained.best_path, tta="flip").probabilities(symmetric)
    assert np.allclose(flipped, open_model(trained.best_path).probabilities(symmetric),
                       atol=1e-6)


def test_eval_with_tta_records_it_and_reports_the_averaged_accuracy(trained, tmp_path, capsys):
    data = json.loads((trained.run_dir / "config.json").read_text())
    options = [f"--data-opt={k}={v}" for k, v in data["data_options"].items()]
    out = tmp_path / "eval"
    assert main(["eval", str(trained.best_path), "--data", "shapes", "--out-dir", str(out),
                 "--tta", "flip", *options]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["tta"] == "flip" and summary["images"] == 90
    clf = Classifier.load(trained.best_path, tta="flip")
    assert clf.runner.__class__.__name__ == "FlipAveraged"


def test_an_unknown_tta_is_a_one_line_error(trained, capsys):
    with pytest.raises(ConfigError, match="Unknown --tta"):
        open_model(trained.best_path, tta="rotate")
    assert main(["eval", str(trained.best_path), "--data", "shapes", "--tta", "rotate"]) == 1
    err = capsys.readouterr().err
    assert "Unknown --tta 'rotate'" in err and "Traceback" not in err


def test_flip_tta_exported_into_the_graph_equals_tta_at_inference(trained, tmp_path):
    from imgcls.export import export_onnx
    from imgcls.manifest import inspect_model

    path = tmp_path / "tta.onnx"
    export_onnx(trained.best_path, path, tta="flip", embed_preprocessing=True)
    assert inspect_model(path)["manifest"]["export"]["tta"] == "flip"
    pixels = _pixels(trained)
    in_graph = open_model(path).probabilities(pixels)
    at_inference = open_model(trained.best_path, tta="flip").probabilities(pixels)
    assert np.abs(in_graph - at_inference).max() < 1e-4
    with pytest.raises(ConfigError, match="already averages"):
        open_model(path, tta="flip")


def test_infer_with_tta_writes_the_averaged_ranking(trained, exported, tmp_path):
    import csv

    from PIL import Image

    from imgcls.images import load_pixels

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, pixels in enumerate(_pixels(trained, n=5, seed=2)):
        Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "preds.csv"
    assert main(["infer", str(exported), str(folder), "-o", str(out), "-k", "3",
                 "--tta", "flip"]) == 0
    rows = {row["path"]: row for row in csv.DictReader(out.open())}
    runner = open_model(exported, tta="flip")
    classes = runner.manifest["classes"]
    for path, row in rows.items():
        probs = runner.probabilities(load_pixels(path, runner.preprocess)[None])[0]
        assert row["label"] == classes[int(probs.argmax())]
        assert float(row["confidence"]) == pytest.approx(probs.max(), abs=1e-5)
