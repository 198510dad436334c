"""A timm model through imgcls end to end: train, export through the parity gate, infer;
fine-tuning from a local weights file; and the wrong file as one clear error."""

from __future__ import annotations

import csv

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from timm_helpers import class_folders

from imgcls.cli import main
from imgcls.errors import ConfigError
from imgcls.train import TrainConfig, fit

MODEL = "timm/resnet10t"


def _config(data, out, **overrides) -> TrainConfig:
    options = dict(model=MODEL, data=str(data), out=str(out), epochs=1, batch_size=4,
                   img_size=48, augment="none", report=False, warmup_epochs=0.0)
    return TrainConfig(**(options | overrides))


@pytest.mark.slow  # about a minute on two busy cores
def test_trains_exports_through_the_parity_gate_and_infers(tmp_path, capsys):
    data = class_folders(tmp_path / "data")
    result = fit(_config(data, tmp_path / "runs"))
    assert result.run_dir.name == "timm-resnet10t"  # one folder, not runs/timm/resnet10t
    onnx = tmp_path / "model.onnx"
    assert main(["export", "onnx", str(result.best_path), "-o", str(onnx)]) == 0
    assert onnx.is_file()
    predictions = tmp_path / "predictions.csv"
    assert main(["infer", str(onnx), str(data), "-o", str(predictions), "--workers", "0"]) == 0
    rows = list(csv.DictReader(predictions.open()))
    assert len(rows) == 12 and {row["label"] for row in rows} <= {"red", "green"}
    # Grad-CAM on the layer the plugin names from timm's feature_info (layer4).
    out = tmp_path / "explain"
    assert main(["explain", str(result.best_path), str(next(data.glob("red/*.png"))),
                 "--out-dir", str(out)]) == 0
    assert list(out.rglob("*.png"))


def test_fine_tunes_from_a_local_weights_file(tmp_path):
    source = timm.create_model("resnet10t", num_classes=1000)
    path = tmp_path / "resnet10t.safetensors"
    save_file(source.state_dict(), str(path))
    result = fit(_config(class_folders(tmp_path / "data"), tmp_path / "runs",
                         weights=str(path), freeze_backbone=True))
    trained = load_file(str(result.best_path))
    # The backbone was frozen: it holds the file's weights; the new head has 2 outputs.
    assert torch.equal(trained["conv1.0.weight"], source.conv1[0].weight)
    assert trained["fc.weight"].shape == (2, source.fc.in_features)


def test_weights_of_another_architecture_are_one_clear_error(tmp_path):
    path = tmp_path / "mobilenet.safetensors"
    save_file(timm.create_model("mobilenetv3_small_050").state_dict(), str(path))
    with pytest.raises(ConfigError) as info:
        fit(_config(class_folders(tmp_path / "data", per_class=2), tmp_path / "runs",
                    weights=str(path)))
    assert str(path) in info.value.message and "\n" not in info.value.message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.safetensors"))
