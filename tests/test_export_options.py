"""Export options (--embed-preprocessing, --fp16, --softmax, --opset), inspect, the parity gate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from imgcls.cli import main
from imgcls.data import load_dataset
from imgcls.errors import ExportError
from imgcls.export import export_onnx
from imgcls.export.parity import FP16_TOLERANCE
from imgcls.infer import Classifier
from imgcls.manifest import inspect_model, read_manifest

from .helpers import TINY_SHAPES


@pytest.fixture(scope="module")
def val_paths(trained):
    loaded = load_dataset("shapes", dict(TINY_SHAPES))
    return [str(path) for path, _ in loaded.val[::3]]


@pytest.fixture(scope="module")
def embedded(trained, tmp_path_factory):
    return export_onnx(trained.best_path, tmp_path_factory.mktemp("embed") / "embed.onnx",
                       embed_preprocessing=True).path


@pytest.fixture(scope="module")
def fp16_softmax(trained, tmp_path_factory):
    return export_onnx(trained.best_path, tmp_path_factory.mktemp("fp16") / "half.onnx",
                       fp16=True, softmax=True, opset=18)


def manifest_of(path):
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props["imgcls.manifest"])


def test_manifest_round_trip(exported, trained):
    checkpoint = read_manifest(trained.best_path)
    manifest = manifest_of(exported)
    for key in ("classes", "preprocess", "model", "training", "dataset", "format_version"):
        assert manifest[key] == checkpoint[key]
    export = manifest["export"]
    assert export["preprocessing"] == "external" and export["outputs"] == "logits"
    assert export["precision"] == "fp32" and export["opset"] >= 18
    assert export["parity"]["passed"] is True and export["parity"]["images"] >= 32
    assert set(manifest["versions"]) >= {"imgcls", "torch", "onnx", "onnxruntime"}
    assert Classifier.load(exported).manifest == manifest


def test_inspect_prints_the_manifest(exported, trained, capsys):
    assert main(["inspect", str(exported)]) == 0
    out = capsys.readouterr().out
    assert ", ".join(trained.classes) in out
    assert '"size": [64, 64]' in out and "basic-cnn" in out
    assert "input float32 [batch, 3, 64, 64]" in out and "preprocessing external" in out
    assert main(["inspect", str(exported), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["manifest"] == manifest_of(exported)
    assert main(["inspect", str(trained.best_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifest"]["classes"] == trained.classes


def test_inspect_refuses_a_foreign_file(tmp_path, capsys):
    (tmp_path / "x.onnx").write_bytes(b"\x00garbage")
    assert main(["inspect", str(tmp_path / "x.onnx")]) == 1
    assert "not a readable ONNX file" in capsys.readouterr().err


def test_embedded_preprocessing_takes_pixels_and_agrees(embedded, exported, val_paths):
    session = ort.InferenceSession(str(embedded), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    assert graph_input.type == "tensor(uint8)" and graph_input.shape[1:] == [64, 64, 3]
    assert manifest_of(embedded)["export"]["input"] == "uint8 NHWC RGB 64x64"
    plain = Classifier.load(exported).predict(val_paths, top_k=2)
    inside = Classifier.load(embedded).predict(val_paths, top_k=2)
    assert [p.labels for p in inside] == [p.labels for p in plain]
    assert np.allclose([p.scores for p in inside], [p.scores for p in plain], atol=1e-5)


def test_fp16_softmax_export_loads_and_runs(fp16_softmax, exported, val_paths):
    manifest = manifest_of(fp16_softmax.path)["export"]
    assert manifest["precision"] == "fp16" and manifest["outputs"] == "probabilities"
    assert manifest["opset"] == 18
    weights = onnx.load(str(fp16_softmax.path)).graph.initializer
    assert any(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    assert fp16_softmax.parity.tolerance == FP16_TOLERANCE and fp16_softmax.parity.passed
    session = ort.InferenceSession(str(fp16_softmax.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    probs = session.run(None, {"input": x})[0]
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    half = Classifier.load(fp16_softmax.path).predict(val_paths)
    full = Classifier.load(exported).predict(val_paths)
    agree = np.mean([a.label == b.label for a, b in zip(half, full, strict=True)])
    assert agree >= 0.95
    assert np.allclose([p.confidence for p in half], [p.confidence for p in full], atol=2e-2)


def test_parity_gate_fails_on_a_tampered_model(trained, tmp_path, monkeypatch, capsys):
    import imgcls.export.onnx as export_module

    real = export_module._export_graph

    def tampered(model, example, path, opset, names):
        real(model, example, path, opset, names)
        proto = onnx.load(str(path))
        weight = max(proto.graph.initializer, key=lambda w: len(w.raw_data))
        values = onnx.numpy_helper.to_array(weight) * 1.05
        weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
        onnx.save(proto, str(path))

    monkeypatch.setattr(export_module, "_export_graph", tampered)
    output = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="Parity check failed"):
        export_onnx(trained.best_path, output)
    assert not output.exists()
    report = json.loads((tmp_path / "bad.onnx.parity.json").read_text())
    assert report["passed"] is False and report["max_abs_diff"] > report["tolerance"]
    assert 0.0 <= report["top5_overlap"] <= 1.0 and "top1_agreement" in report
    assert main(["export", "onnx", str(trained.best_path), "-o", str(output)]) == 1
    assert "Parity check failed" in capsys.readouterr().err and not output.exists()


def test_calibration_folder_is_used(trained, tmp_path, val_paths):
    folder = tmp_path / "calib"
    folder.mkdir()
    for path in val_paths[:20]:
        shutil.copy(path, folder)
    result = export_onnx(trained.best_path, tmp_path / "m.onnx", calibration=str(folder))
    assert result.parity.source == str(folder) and result.parity.images == 20
    assert inspect_model(result.path)["manifest"]["export"]["parity"]["source"] == str(folder)


def test_calibration_images_are_spread_over_the_folder(tmp_path):
    from PIL import Image

    from imgcls.export.onnx import _calibration_paths

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(80):
            Image.new("RGB", (4, 4)).save(tmp_path / name / f"{i:02d}.png")
    paths, _ = _calibration_paths(None, str(tmp_path), 64)
    assert len(paths) == 64 and len(set(paths)) == 64
    assert 24 <= sum("/cats/" in p for p in paths) <= 40
