"""Fuzz the manifest parser and checkpoint reader: bad input only ever raises CheckpointError."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcls.checkpoint import save_checkpoint
from imgcls.errors import CheckpointError
from imgcls.manifest import make_manifest, parse_manifest, read_manifest
from imgcls.specs import Preprocess

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
VALID = make_manifest("basic-cnn", {}, ["cat", "dog"], Preprocess())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _mutations(draw_value):
    """A valid manifest with one key replaced by an arbitrary JSON value."""
    return st.builds(lambda key, value: {**VALID, key: value},
                     st.sampled_from([*sorted(VALID), "extra"]), draw_value)


def _check(text: str) -> None:
    try:
        manifest = parse_manifest(text, "fuzz")
    except CheckpointError:
        return
    assert isinstance(manifest["classes"], list) and len(manifest["classes"]) >= 2
    Preprocess.from_dict(manifest["preprocess"])


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    _check(text)


@FUZZ
@given(json_values)
def test_arbitrary_json(value):
    _check(json.dumps(value))


@FUZZ
@given(_mutations(json_values))
def test_valid_manifest_with_one_field_replaced(manifest):
    _check(json.dumps(manifest))


@FUZZ
@given(st.data())
def test_mutated_checkpoint_bytes(tmp_path, data):
    path = tmp_path / "m.safetensors"
    if not path.exists():
        save_checkpoint(path, torch.nn.Linear(2, 2), VALID)
    original = path.read_bytes()
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    target = tmp_path / "mutated.safetensors"
    target.write_bytes(bytes(blob[:cut]))
    with contextlib.suppress(CheckpointError):
        read_manifest(target)


BAD_PREPROCESS = [
    {"size": ["Infinity", 1]}, {"size": [float("inf"), 1]}, {"size": ["a", 2]},
    {"size": [-5, 5]}, {"size": [0, 0]}, {"size": "ab"}, {"size": [64, 64], "resize": "bogus"},
    {"size": [64, 64], "std": [0, 1, 1]}, {"size": [64, 64], "mean": [float("nan"), 0, 0]},
    {"size": [64, 64], "crop_fraction": 2}, {"size": [64, 64], "interpolation": 3},
]


def test_bad_preprocess_values_are_checkpoint_errors():
    for bad in BAD_PREPROCESS:
        text = json.dumps({**VALID, "preprocess": bad})
        with pytest.raises(CheckpointError, match="preprocess"):
            parse_manifest(text, "fuzz")


def test_duplicate_and_non_string_classes_are_refused():
    for classes in (["a", "a"], ["a"], [1, 2], "ab", None):
        with pytest.raises(CheckpointError):
            parse_manifest(json.dumps({**VALID, "classes": classes}), "fuzz")


# --------------------------------------------------------------------------- end to end
# Random manifests through `imgcls inspect`, Classifier.load and `imgcls infer` on one real
# exported .onnx (the `exported` fixture) whose metadata is replaced: only ImgclsError
# subclasses may come out, and the CLI says "Error:" without a traceback.

E2E = settings(FUZZ, max_examples=60)
SECTIONS = ("", "preprocess", "export", "model", "export.parity")


def _section(manifest: dict, where: str) -> dict | None:
    for key in filter(None, where.split(".")):
        manifest = manifest.get(key) if isinstance(manifest, dict) else None
    return manifest if isinstance(manifest, dict) else None


@st.composite
def hostile_manifests(draw, base: dict) -> str:
    """A real manifest with a few fields replaced or removed, or arbitrary JSON."""
    if draw(st.integers(0, 9)) == 0:
        return json.dumps(draw(json_values))
    manifest = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        section = _section(manifest, draw(st.sampled_from(SECTIONS)))
        if section is None:
            continue
        key = draw(st.sampled_from([*sorted(section), "extra"]))
        if draw(st.booleans()) and key in section:
            del section[key]
        else:
            section[key] = draw(json_values)
    return json.dumps(manifest)


@pytest.fixture(scope="module")
def onnx_base(exported):
    import onnx

    proto = onnx.load(str(exported))
    props = {p.key: p.value for p in proto.metadata_props}
    return proto, json.loads(props["imgcls.manifest"])


def _write_onnx(proto, text: str, path):
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "imgcls.manifest", text
    path.write_bytes(proto.SerializeToString())
    return path


def _cli_ok(args: list[str], capsys) -> None:
    from imgcls.cli import main

    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 0 or (code == 1 and "Error:" in err), err


@E2E
@given(data=st.data())
def test_random_manifests_through_inspect(onnx_base, tmp_path, capsys, data):
    proto, base = onnx_base
    path = _write_onnx(proto, data.draw(hostile_manifests(base)), tmp_path / "m.onnx")
    _cli_ok(["inspect", str(path)], capsys)


@E2E
@given(data=st.data())
def test_random_manifests_through_classifier_load(onnx_base, tmp_path, data):
    import numpy as np

    from imgcls.errors import ImgclsError
    from imgcls.infer import Classifier

    proto, base = onnx_base
    path = _write_onnx(proto, data.draw(hostile_manifests(base)), tmp_path / "m.onnx")
    with contextlib.suppress(ImgclsError):
        probs = Classifier.load(path, device="cpu").predict(np.zeros((20, 30, 3), np.uint8))
        assert all(0.0 <= s <= 1.0 for s in probs[0].scores)


@settings(E2E, max_examples=20)
@given(data=st.data())
def test_random_manifests_through_infer(onnx_base, tmp_path, capsys, data):
    from PIL import Image

    proto, base = onnx_base
    images = tmp_path / "images"
    if not images.exists():
        images.mkdir()
        Image.new("RGB", (30, 20), (10, 200, 10)).save(images / "a.png")
    path = _write_onnx(proto, data.draw(hostile_manifests(base)), tmp_path / "m.onnx")
    _cli_ok(["infer", str(path), str(images), "--workers", "0",
             "-o", str(tmp_path / "out.csv")], capsys)
