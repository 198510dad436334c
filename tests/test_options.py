"""imgcls.options: one did-you-mean, one parser of option text, one check of model options."""

from __future__ import annotations

import pytest

from imgcls.errors import ConfigError
from imgcls.options import (
    builder_options,
    check_finite_option,
    did_you_mean,
    parse_value,
    unknown_options,
)


def test_option_text_becomes_numbers_booleans_or_stays_text():
    assert [parse_value(t) for t in ("3", "0.2", "on", "No", " x ")] == [3, 0.2, True, False, "x"]
    with pytest.raises(ConfigError, match="finite"):
        check_finite_option("--model-opt", "dropout", parse_value("inf"))


def test_one_did_you_mean_for_every_name():
    assert did_you_mean("basic", ["basic-cnn", "deep-cnn"]) == "Did you mean 'basic-cnn'? "
    assert did_you_mean("deep", ["deep-cnn", "deeper"]) == "Did you mean 'deeper' or 'deep-cnn'? "
    assert did_you_mean("deep", ["deep-cnn", "deeper"], n=1) == "Did you mean 'deeper'? "
    assert did_you_mean("sgd", ["adam", "adamw"]) == ""


def _named(num_classes, image_size=(32, 32), depth=3, *, width=1.0):
    return None


def _any(num_classes, image_size=(32, 32), **options):
    return None


def test_model_options_are_checked_against_the_builder_signature():
    assert builder_options(_named) == (["depth", "width"], False)
    assert builder_options(_any) == ([], True)
    assert unknown_options(_named, ["width", "depht", "depth"]) == ["depht"]
    assert unknown_options(_any, ["anything"]) == []
    # imgcls passes these itself, whatever the builder takes
    assert unknown_options(_any, ["image_size", "num_classes"]) == ["image_size", "num_classes"]


def test_train_and_tune_use_the_same_check(tmp_path):
    from imgcls.registry import get_model
    from imgcls.train.config import TrainConfig
    from imgcls.train.loop import build_model
    from imgcls.tune.space import model_option_names

    spec = get_model("vgg-bn").spec
    assert model_option_names(spec) == builder_options(spec.build)[0]
    config = TrainConfig(model="vgg-bn", model_options={"num_classes": 3})
    with pytest.raises(ConfigError, match="does not take num_classes"):
        build_model(spec, 2, spec.preprocess, config)
