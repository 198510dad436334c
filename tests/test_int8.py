"""int8 export: static QDQ quantisation, its accuracy gate, the manifest, inspect and infer."""

from __future__ import annotations

import json
import shutil
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from imgcls.checkpoint import save_checkpoint
from imgcls.cli import main
from imgcls.data import load_dataset
from imgcls.errors import ManifestError
from imgcls.export import export_onnx
from imgcls.export.int8 import (
    HELD_OUT_MAX,
    MIN_HELD_OUT,
    SPLIT_SEED,
    needs_reduced_range,
    split_images,
)
from imgcls.infer import Classifier
from imgcls.manifest import make_manifest, read_manifest, validate_manifest
from imgcls.registry import get_model

from .helpers import TINY_SHAPES, write_class_folders

CALIB = 64  # of the 690 tiny-shapes images the trained checkpoint records


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def int8(trained, tmp_path_factory):
    """The trained basic-cnn exported with --int8, calibrated on its recorded training data."""
    return export_onnx(trained.best_path, tmp_path_factory.mktemp("int8") / "m.int8.onnx",
                       int8=True, calib_images=CALIB)


@pytest.fixture(scope="module")
def val_paths(trained):
    return [str(path) for path, _ in load_dataset("shapes", dict(TINY_SHAPES)).val]


def test_int8_export_passes_the_gate_and_is_smaller(int8, exported):
    report = int8.quantization
    assert report.passed and report.top1_agreement >= 0.99 and report.min_agreement == 0.99
    assert report.images == HELD_OUT_MAX and report.calibration_images == CALIB
    assert int8.path.stat().st_size < exported.stat().st_size / 3  # int8 weights, float head
    assert report.float_bytes == pytest.approx(exported.stat().st_size, rel=0.01)
    assert report.float_images_per_second > 0 and report.int8_images_per_second > 0
    ops = {node.op_type for node in onnx.load(str(int8.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = onnx.load(str(int8.path)).graph.initializer
    assert any(w.data_type == onnx.TensorProto.INT8 and len(w.dims) == 4 for w in weights)
    saved = json.loads(int8.report_path.read_text())
    assert saved["passed"] and saved["int8"]["top1_agreement"] == report.top1_agreement


def test_manifest_records_the_quantisation(int8, trained):
    manifest = read_manifest(int8.path)
    assert manifest["classes"] == trained.classes
    export = manifest["export"]
    assert export["precision"] == "int8" and export["parity"]["passed"]
    quantization = export["quantization"]
    assert quantization["method"] == "static" and quantization["format"] == "QDQ"
    assert quantization["weights"] == "per-channel int8"
    assert quantization["weight_bits"] == (7 if needs_reduced_range() else 8)
    calibration = quantization["calibration"]
    assert calibration["images"] == CALIB and calibration["split_seed"] == SPLIT_SEED
    assert calibration["source"] == "shapes (training data)"
    assert calibration["fingerprint"] == int8.quantization.calibration_fingerprint
    assert len(calibration["fingerprint"]) == 16
    assert quantization["gate"]["top1_agreement"] == int8.quantization.top1_agreement
    assert quantization["gate"]["passed"] is True


def test_infer_and_classifier_run_the_int8_file(int8, exported, val_paths, tmp_path, capsys):
    quantised = Classifier.load(int8.path).predict(val_paths)
    plain = Classifier.load(exported).predict(val_paths)
    agree = np.mean([a.label == b.label for a, b in zip(quantised, plain, strict=True)])
    assert agree >= 0.95
    code, _, err = run(["infer", int8.path, *val_paths[:10], "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == [p.label for p in quantised[:10]]


def test_inspect_shows_the_quantisation(int8, capsys):
    code, out, _ = run(["inspect", int8.path], capsys)
    assert code == 0
    assert "export        opset" in out and ", int8, preprocessing external" in out
    assert f"calibration on {CALIB} images from shapes (training data)" in out
    # AVX2/AVX-512 without VNNI gets 7-bit weights (needs_reduced_range); VNNI CPUs 8-bit.
    bits = " (7-bit range)" if needs_reduced_range() else ""
    assert f"per-channel int8{bits} weights" in out and "(the float model, before int8)" in out
    assert "held-out images (minimum 99.0%)" in out


def test_cli_int8_with_a_folder_embedded_and_softmax(trained, tmp_path, capsys):
    folder = write_class_folders(tmp_path / "calib", {"a": (200, 40, 40), "b": (40, 40, 200),
                                                      "c": (40, 200, 40)}, per_class=12, size=64)
    target = tmp_path / "out" / "e.int8.onnx"
    target.parent.mkdir()
    code, out, err = run(["export", "onnx", trained.best_path, "-o", target, "--int8",
                          "--calibrate", folder, "--calib-images", 8, "--embed-preprocessing",
                          "--softmax", "--min-agreement", 0], capsys)
    assert code == 0, err
    assert f"int8: calibrated on 8 images from {folder}" in out
    assert "top-1 agreement" in out and "on 28 held-out images" in out
    assert "x smaller" in out and "images/s float" in out and f"wrote {target}" in out
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    probabilities = session.run(None, {"pixels": pixels})[0]
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)  # the head stays float
    assert read_manifest(target)["export"]["preprocessing"] == "embedded"


def test_a_gate_above_one_fails_and_leaves_no_file(trained, tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the export's temporary files
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run(["export", "onnx", trained.best_path, "-o", out / "m.int8.onnx",
                        "--int8", "--calib-images", CALIB, "--min-agreement", 1.01], capsys)
    assert code == 1 and err.startswith("Error: The int8 gate failed: top-1 agreement")
    assert "(minimum 101.0%)" in err and "x smaller" in err and "images/s float" in err
    assert "was not written" in err and "Hint:" in err and "Traceback" not in err
    assert list(out.iterdir()) == [] and list(scratch.iterdir()) == []


# --------------------------------------------------------------------------- bad input


def _checkpoint(path, dataset):
    spec = get_model("basic-cnn").spec
    model = spec.build(2, image_size=spec.input_size)
    return save_checkpoint(path, model, make_manifest("basic-cnn", {}, ["a", "b"],
                                                      spec.preprocess, dataset=dataset))


@pytest.mark.parametrize("dataset, message", [
    (None, "--int8 needs calibration images, and the checkpoint records no training data."),
    ({"data": "gone/folder"}, "--int8 needs calibration images, and gone/folder is unavailable"),
])
def test_int8_without_calibration_images_is_one_line(dataset, message, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "c.safetensors", dataset)
    code, _, err = run(["export", "onnx", checkpoint, "-o", tmp_path / "m.onnx", "--int8"],
                       capsys)
    assert code == 1 and err.startswith(f"Error: {message}") and "--calibrate" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


def test_bad_int8_options_are_one_line(tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "c.safetensors", None)
    empty = tmp_path / "empty"
    empty.mkdir()
    few = write_class_folders(tmp_path / "few", {"a": (200, 0, 0), "b": (0, 0, 200)},
                              per_class=5)
    cases = {
        ("--int8", "--calibrate", tmp_path / "missing"): "Calibration data not found",
        ("--int8", "--calibrate", empty): "No images found for input",
        ("--int8", "--calibrate", few): "holds 10 images: 10 for calibration leave 0 held out",
        ("--int8", "--calib-images", 0): "--calib-images must be a whole number",
        ("--int8", "--min-agreement", -0.1): "--min-agreement must be a finite number",
        ("--int8", "--min-agreement", "nan"): "--min-agreement must be a finite number",
        ("--int8", "--fp16"): "--int8 and --fp16 cannot be combined",
        ("--calibrate", few): "--calibrate only apply with --int8",
        ("--calib-images", 8, "--min-agreement", 0.5): "--calib-images, --min-agreement only",
    }
    for args, message in cases.items():
        code, _, err = run(["export", "onnx", checkpoint, "-o", tmp_path / "m.onnx", *args],
                           capsys)
        assert code == 1 and message in err and "Hint:" in err, (args, err)
        assert "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------------------- the split


def test_the_split_is_disjoint_deterministic_and_the_fingerprint_follows_content(tmp_path):
    folder = write_class_folders(tmp_path / "a", {"x": (200, 0, 0), "y": (0, 0, 200)},
                                 per_class=20)
    paths = [str(p) for p in sorted(folder.rglob("*.png"))]
    plan = split_images(paths, "a", 10)
    again = split_images(list(reversed(paths)), "a", 10)
    assert plan.calibration == again.calibration and plan.held_out == again.held_out
    assert len(plan.calibration) == 10 and len(plan.held_out) == 30
    assert not set(plan.calibration) & set(plan.held_out)
    assert {p.split("/")[-2] for p in plan.calibration} == {"x", "y"}  # shuffled, not sorted
    copy = shutil.copytree(folder, tmp_path / "b")
    moved = split_images([p.replace(str(folder), str(copy)) for p in paths], "b", 10)
    assert moved.fingerprint() == plan.fingerprint()
    with open(moved.calibration[0], "ab") as handle:
        handle.write(b"\0")
    assert moved.fingerprint() != plan.fingerprint()
    assert len(split_images(paths, "a", 40 - MIN_HELD_OUT).held_out) == MIN_HELD_OUT


@pytest.mark.parametrize("reduced", [True, False])
def test_seven_bit_weights_are_used_recorded_and_shown(reduced, trained, tmp_path,
                                                       monkeypatch, capsys):
    """Where the CPU lacks VNNI the weights are quantised to 7 bits, and the file says so:
    the same checkpoint exports differently on different CPUs, and inspect tells which."""
    monkeypatch.setattr("imgcls.export.int8.needs_reduced_range", lambda: reduced)
    result = export_onnx(trained.best_path, tmp_path / "m.int8.onnx", int8=True,
                         calib_images=CALIB, min_agreement=0.9)
    assert read_manifest(result.path)["export"]["quantization"]["weight_bits"] == (
        7 if reduced else 8)
    weights = [onnx.numpy_helper.to_array(w) for w in onnx.load(str(result.path)).graph.initializer
               if w.data_type == onnx.TensorProto.INT8 and len(w.dims) == 4]
    largest = max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
    assert largest <= 64 if reduced else largest > 64
    code, out, _ = run(["inspect", result.path], capsys)
    assert code == 0 and ("per-channel int8 (7-bit range) weights" in out) == reduced


def test_manifests_with_and_without_quantisation_validate(int8, exported):
    assert "quantization" not in read_manifest(exported)["export"]  # older files load
    manifest = read_manifest(int8.path)
    assert validate_manifest(manifest, "m") == manifest
    quantization = manifest["export"]["quantization"]
    for broken in ({}, {"method": "static"}, "int8", quantization | {"gate": {"images": "many"}},
                   quantization | {"weight_bits": 9}, quantization | {"weight_bits": True}):
        bad = json.loads(json.dumps(manifest))
        bad["export"]["quantization"] = broken
        with pytest.raises(ManifestError, match=r"invalid imgcls manifest: export\.quantization"):
            validate_manifest(bad, "m")
