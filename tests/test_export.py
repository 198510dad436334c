"""ONNX export: metadata, dynamic batch, checker, parity with PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from imgcls.checkpoint import load_checkpoint
from imgcls.errors import CheckpointError
from imgcls.export.onnx import check_parity, export_onnx
from imgcls.manifest import MANIFEST_KEY


def test_export_writes_manifest_and_passes_checker(exported, trained):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    manifest = json.loads(props[MANIFEST_KEY])
    assert manifest["classes"] == trained.classes
    assert manifest["model"]["name"] == "basic-cnn"
    assert manifest["preprocess"]["size"] == [64, 64]


def test_batch_axis_is_dynamic(exported):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for batch in (1, 7):
        out = session.run(None, {name: np.random.rand(batch, 3, 64, 64).astype(np.float32)})[0]
        assert out.shape == (batch, 3)


def test_parity_report_next_to_model(exported):
    report = json.loads(exported.with_name("model.onnx.parity.json").read_text())
    assert report["passed"] is True
    assert report["images"] >= 32
    assert report["max_abs_diff"] <= 1e-4
    assert report["top1_agreement"] == 1.0
    assert "validation split" in report["source"]


def test_parity_detects_a_different_model(exported, trained):
    model = load_checkpoint(trained.best_path).model
    with pytest.MonkeyPatch.context():
        for param in model.parameters():
            param.data.add_(0.05)
    inputs = np.random.default_rng(0).random((8, 3, 64, 64), dtype=np.float32)
    report = check_parity(model, exported, inputs, "test", 1e-4)
    assert not report.passed and report.max_abs_diff > 1e-4


def test_export_refuses_a_non_checkpoint(tmp_path):
    bogus = tmp_path / "model.safetensors"
    bogus.write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(CheckpointError, match="not an imgcls checkpoint"):
        export_onnx(bogus, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
