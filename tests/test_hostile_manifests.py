"""Hostile manifests: every bad value is one ManifestError/CheckpointError, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper
from PIL import Image

from imgcls.checkpoint import build_model, load_checkpoint, save_checkpoint
from imgcls.cli import main
from imgcls.errors import CheckpointError, ImgclsError, ManifestError
from imgcls.infer import Classifier
from imgcls.manifest import MANIFEST_KEY, make_manifest, parse_manifest, read_manifest
from imgcls.schema import MAX_SIDE, MIN_SIDE
from imgcls.specs import Preprocess

FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
VALID = make_manifest("basic-cnn", {}, ["cat", "dog"], Preprocess())


def _with(**changes) -> str:
    return json.dumps({**VALID, **changes})


def _preprocess(**changes) -> str:
    return _with(preprocess={**VALID["preprocess"], **changes})


def _safetensors(path: Path, manifest_text: str) -> Path:
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
              "__metadata__": {MANIFEST_KEY: manifest_text}}
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0\0\0\0")
    return path


def _cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# --------------------------------------------------------------------------- schema


def test_deeply_nested_manifests_are_manifest_errors(tmp_path, capsys):
    for text in ("[" * 200_000, "[" * 5000 + "]" * 5000,
                 _with(training={"a": json.loads("[" * 100 + "]" * 100)})):
        with pytest.raises(ManifestError):
            parse_manifest(text, "deep")
        code, err = _cli(["inspect", str(_safetensors(tmp_path / "d.safetensors", text))], capsys)
        assert code == 1 and "Error:" in err


@pytest.mark.parametrize("changes", [
    {"export": [1, 2]}, {"export": "x"}, {"versions": [1]}, {"dataset": 3},
    {"export": {"parity": [1]}}, {"export": {"parity": {"max_abs_diff": "big"}}},
    {"export": {"parity": {"max_abs_diff": 0, "top1_agreement": 1, "images": 2}}},
    {"export": {"preprocessing": ["embedded"]}},
])
def test_sections_of_the_wrong_type_fail_in_inspect_with_one_line(tmp_path, capsys, changes):
    path = _safetensors(tmp_path / "m.safetensors", _with(**changes))
    code, err = _cli(["inspect", str(path)], capsys)
    assert code == 1 and err.startswith("Error:") and "invalid imgcls manifest" in err


@pytest.mark.parametrize(("version", "says"), [
    ("1", "must be an integer"), (1.0, "must be an integer"), (True, "must be an integer"),
    (None, "must be an integer"), (-5, "at least 1"), (0, "at least 1"), (2, "newer"),
])
def test_format_version_must_be_a_known_integer(version, says):
    with pytest.raises(ManifestError, match=says):
        parse_manifest(_with(format_version=version), "v")


bad_sides = (st.floats(allow_nan=True) | st.text(max_size=4) | st.booleans() | st.none()
             | st.integers(max_value=MIN_SIDE - 1) | st.integers(min_value=MAX_SIDE + 1))


@FUZZ
@given(side=bad_sides, good=st.integers(MIN_SIDE, MAX_SIDE), first=st.booleans())
def test_sizes_must_be_integers_within_limits(side, good, first):
    size = [side, good] if first else [good, side]
    with pytest.raises(ManifestError, match="size"):
        parse_manifest(_preprocess(size=size), "s")


@FUZZ
@given(st.integers(MIN_SIDE, MAX_SIDE), st.integers(MIN_SIDE, MAX_SIDE))
def test_sizes_within_limits_are_accepted(h, w):
    assert parse_manifest(_preprocess(size=[h, w]), "s")["preprocess"]["size"] == [h, w]


huge_or_odd = (st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda v: not abs(v) <= 1e4) | st.text(max_size=3) | st.booleans() | st.none())


@FUZZ
@given(key=st.sampled_from(["mean", "std", "value_range"]), value=huge_or_odd,
       at=st.integers(0, 1))
def test_normalisation_constants_must_be_finite_and_bounded(key, value, at):
    values = list(VALID["preprocess"][key])
    values[at] = value
    with pytest.raises(ManifestError, match=key):
        parse_manifest(_preprocess(**{key: values}), "n")


@pytest.mark.parametrize("std", [[1e-308, 1, 1], [0, 1, 1], [-1, 1, 1], [1e-5, 1, 1]])
def test_a_tiny_std_is_refused(std):
    with pytest.raises(ManifestError, match="std"):
        parse_manifest(_preprocess(std=std), "n")


def test_crop_fraction_and_names_are_not_coerced():
    for changes in ({"crop_fraction": "0.5"}, {"crop_fraction": True},
                    {"resize": 1}, {"interpolation": None}):
        with pytest.raises(ManifestError, match="preprocess"):
            parse_manifest(_preprocess(**changes), "c")


# --------------------------------------------------------------------------- the model


def _checkpoint(tmp_path: Path, **model) -> Path:
    manifest = make_manifest("basic-cnn", {}, ["cat", "dog"], Preprocess())
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(manifest), manifest)
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    manifest.update(model)
    header["__metadata__"][MANIFEST_KEY] = json.dumps(manifest)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length:])
    return path


def test_unknown_model_options_are_manifest_errors(tmp_path):
    for options in ({"bogus": 1}, {"num_classes": 3}, {"hidden": "wide"}):
        path = _checkpoint(tmp_path, model={"name": "basic-cnn", "options": options})
        with pytest.raises(ManifestError, match="basic-cnn"):
            load_checkpoint(path)


def test_a_manifest_asking_for_a_huge_model_fails_before_allocating(tmp_path):
    # 4096 px or a hidden width of 10**9 would need gigabytes: shapes are checked first.
    for changes in ({"model": {"name": "basic-cnn", "options": {"hidden": 10**9}}},
                    {"preprocess": {**VALID["preprocess"], "size": [4096, 4096]}}):
        with pytest.raises(CheckpointError, match="weights do not match"):
            load_checkpoint(_checkpoint(tmp_path, **changes))


def test_nan_weights_raise_instead_of_nan_probabilities(tmp_path, capsys):
    """The whole batch fails (one CheckpointError), not one row: the model itself is bad."""
    manifest = make_manifest("basic-cnn", {}, ["cat", "dog"], Preprocess())
    model = build_model(manifest)
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float("nan"))
    path = save_checkpoint(tmp_path / "nan.safetensors", model, manifest)
    with pytest.raises(CheckpointError, match="non-finite"):
        Classifier.load(path, device="cpu").predict(np.zeros((64, 64, 3), np.uint8))


# --------------------------------------------------------------------------- ONNX graphs


def _onnx(source: Path, target: Path, change=None, weights=None) -> Path:
    proto = onnx.load(str(source))
    props = {p.key: p.value for p in proto.metadata_props}
    manifest = json.loads(props[MANIFEST_KEY])
    if change:
        change(manifest)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, json.dumps(manifest)
    if weights is not None:
        for init in proto.graph.initializer:
            array = numpy_helper.to_array(init)
            if array.dtype.kind == "f":
                init.CopyFrom(numpy_helper.from_array(np.full_like(array, weights), init.name))
    onnx.save(proto, str(target))
    return target


@pytest.mark.parametrize("size", [[32, 32], [64, 65], [4096, 4096]])
def test_a_manifest_size_that_disagrees_with_the_graph_names_both(exported, tmp_path, size):
    def change(m):
        m["preprocess"]["size"] = size

    path = _onnx(exported, tmp_path / "m.onnx", change)
    with pytest.raises(ManifestError, match="does not match the graph") as caught:
        Classifier.load(path, device="cpu")
    assert str(size) in caught.value.message and "64" in caught.value.message


def test_a_manifest_claiming_embedded_preprocessing_on_a_float_graph(exported, tmp_path):
    def change(m):
        m["export"]["preprocessing"] = "embedded"

    with pytest.raises(ManifestError, match="uint8 NHWC"):
        Classifier.load(_onnx(exported, tmp_path / "m.onnx", change), device="cpu")


def test_nan_onnx_weights_fail_inference_with_one_line(exported, tmp_path, capsys):
    path = _onnx(exported, tmp_path / "nan.onnx", weights=float("nan"))
    with pytest.raises(CheckpointError, match="non-finite"):
        Classifier.load(path, device="cpu").predict(np.zeros((64, 64, 3), np.uint8))
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(images / "a.png")
    code, err = _cli(["infer", str(path), str(images), "--workers", "0",
                      "-o", str(tmp_path / "out.csv")], capsys)
    assert code == 1 and "non-finite" in err


def test_a_valid_export_still_loads(exported):
    assert isinstance(Classifier.load(exported, device="cpu"), Classifier)
    assert read_manifest(exported)["export"]["preprocessing"] == "external"
    with pytest.raises(ImgclsError):
        Preprocess.from_dict({"size": [64, 64.5]})
