"""One schema per structure, one set of bounds, one translation of schema errors."""

from __future__ import annotations

import json

import pytest

from imgcls.errors import CheckpointError, ConfigError, ManifestError
from imgcls.manifest import make_manifest, parse_manifest
from imgcls.registry import get_model
from imgcls.schema import MAX_MEAN, MAX_SIDE, MIN_SIDE, MIN_STD
from imgcls.specs import Preprocess
from imgcls.train.config import TrainConfig, config_from_dict


def _manifest(**preprocess) -> str:
    manifest = make_manifest("basic-cnn", {}, ["cat", "dog"], Preprocess())
    return json.dumps(manifest | {"preprocess": manifest["preprocess"] | preprocess})


@pytest.mark.parametrize("side", [MIN_SIDE - 1, MAX_SIDE + 1])
def test_an_image_side_has_the_same_bounds_everywhere(side):
    """Preprocess, a manifest and --img-size refuse the same sizes, naming the field."""
    bound = MIN_SIDE if side < MIN_SIDE else MAX_SIDE
    with pytest.raises(ConfigError, match=rf"Invalid preprocessing: size\[0\] must be .* {bound}"):
        Preprocess(size=(side, 64))
    with pytest.raises(ManifestError, match=rf"preprocess\.size\[1\] must be .* {bound}, got"):
        parse_manifest(_manifest(size=[64, side]), "m.onnx")
    with pytest.raises(ConfigError, match=rf"^--img-size must be .* {bound}, got {side}\. \(hint"):
        TrainConfig(img_size=side).validate(get_model("basic-cnn").spec)
    for ok in (MIN_SIDE, MAX_SIDE):
        assert Preprocess(size=(ok, ok)).size == (ok, ok)
        assert parse_manifest(_manifest(size=[ok, ok]), "m")["preprocess"]["size"] == [ok, ok]


def test_normalisation_bounds_are_shared():
    for changes, field in (({"std": (MIN_STD / 2, 1, 1)}, "std[0]"),
                           ({"mean": (0, 0, MAX_MEAN * 2)}, "mean[2]"),
                           ({"value_range": (-MAX_MEAN * 2, 1)}, "value_range[0]")):
        with pytest.raises(ConfigError, match=rf"{field.replace('[', '.').replace(']', '.')}"):
            Preprocess(**changes)
        with pytest.raises(ManifestError, match=rf"preprocess\.{field[:-3]}"):
            parse_manifest(_manifest(**{k: list(v) for k, v in changes.items()}), "m")


def test_preprocess_errors_are_config_errors_when_built_and_manifest_errors_when_read():
    with pytest.raises(ConfigError) as built:
        Preprocess(crop_fraction=0.0)
    assert str(built.value) == ("Invalid preprocessing: crop_fraction must be positive, got 0.0. "
                                "(hint: Fix the Preprocess given by the model's plugin.)")
    with pytest.raises(ManifestError, match=r"Invalid preprocessing: size\[1\] must be an "
                                            r"integer, got 64\.5\."):
        Preprocess.from_dict({"size": [64, 64.5]})
    # Nested in a manifest, Preprocess is checked as the manifest's part, not constructed.
    with pytest.raises(ManifestError, match=r"^m has an invalid imgcls manifest: "
                                            r"preprocess\.crop_fraction must be positive"):
        parse_manifest(_manifest(crop_fraction=0), "m")


def test_preprocess_is_strict_frozen_and_keeps_its_python_api():
    pre = Preprocess(size=[48, 80], mean=(0, 0, 0))  # a list and ints are fine from Python
    assert pre.size == (48, 80) and pre.mean == (0.0, 0.0, 0.0)
    assert pre == Preprocess.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert hash(pre) == hash(Preprocess(size=(48, 80))) and len({pre, pre.with_size(48)}) == 2
    assert pre.with_size(32).size == (32, 32) and pre.size == (48, 80)
    with pytest.raises(ValueError, match="frozen"):
        pre.size = (8, 8)  # type: ignore[misc]
    for bad in ({"size": [True, 8]}, {"size": ["8", 8]}, {"crop_fraction": "0.5"},
                {"resize": "fit"}, {"extra_step": "sharpen"}):
        with pytest.raises(ConfigError):
            Preprocess(**bad)


def test_train_config_is_strict_and_names_the_flag_with_an_example():
    spec = get_model("basic-cnn").spec
    cases = [({"epochs": True}, "--epochs must be an integer, got True.", "--epochs 10"),
             ({"lr": 0.0}, "--lr must be positive, got 0.0.", "--lr 0.002"),
             ({"momentum": -1.0}, "--momentum must be 0 or more, got -1.0.", "--momentum 0.9"),
             ({"optimizer": "lion"}, "Unknown --optimizer 'lion'; choose adamw, adam, sgd.",
              "--optimizer adamw"),
             ({"workers": -1}, "--workers must be 0 or more, got -1.", "--workers 0")]
    for changes, message, example in cases:
        with pytest.raises(ConfigError) as caught:
            TrainConfig(**changes).validate(spec)
        assert caught.value.message == message
        assert caught.value.hint == f"For example: {example}."
    TrainConfig(lr=1).validate(spec)  # an int where a float is asked is fine


def test_config_files_are_type_checked_by_the_same_schema():
    assert config_from_dict({"lr": 1, "img-size": 32}).lr == 1.0
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"workers": "2"}, "run.toml")
    assert caught.value.message == "run.toml: workers must be an integer, got '2'."
    assert caught.value.hint == "Fix workers in run.toml."


def test_resume_state_errors_name_the_field():
    import torch

    from imgcls.checkpoint import check_resume_state

    state = {"format": "imgcls.resume", "format_version": 1, "epoch": 1, "config": {},
             "classes": ["a", "b"], "model": {"w": torch.zeros(1)}, "stepper": {},
             "best": {"epoch": 1, "val_acc": 0.5},
             "history": [{"epoch": 1, "val_acc": 0.5}],
             "rng": {"python": [], "numpy": [], "torch": torch.zeros(1), "cuda": []}}
    check_resume_state(state, "last.pt")
    for change, says in (({"epoch": -1}, "epoch must be 0 or more, got -1"),
                         ({"history": [{"val_acc": 0.5}]}, r"history\[0\]\.epoch is missing"),
                         ({"best": {"val_acc": True}}, r"best\.val_acc must be a number"),
                         ({"model": {"w": [1.0]}}, r"model\.w must be a Tensor, got list"),
                         ({"classes": None}, "classes must be a list, got None")):
        with pytest.raises(CheckpointError, match=rf"^last\.pt is not a usable imgcls resume "
                                                  rf"state: {says}"):
            check_resume_state(state | change, "last.pt")
