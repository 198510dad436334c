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
        with pytest.raises(CheckpointError, match="preprocessing"):
            parse_manifest(text, "fuzz")


def test_duplicate_and_non_string_classes_are_refused():
    for classes in (["a", "a"], ["a"], [1, 2], "ab", None):
        with pytest.raises(CheckpointError):
            parse_manifest(json.dumps({**VALID, "classes": classes}), "fuzz")
