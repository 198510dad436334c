"""Fine-tuning controls: --weights, --freeze-backbone, --backbone-lr-scale, model options."""

from __future__ import annotations

import pytest

from imgcls.errors import ConfigError
from imgcls.registry import get_model
from imgcls.train.config import TrainConfig
from imgcls.train.loop import build_model
from imgcls.train.optim import freeze_backbone, head_name, param_groups


def basic_cnn():
    spec = get_model("basic-cnn").spec
    return spec, spec.build(2, image_size=spec.input_size)


def test_the_head_is_the_last_linear_layer_and_freezing_keeps_only_it():
    _, model = basic_cnn()
    assert head_name(model) == "9"
    freeze_backbone(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"9.weight", "9.bias"}


def test_backbone_learns_at_a_scaled_rate_and_every_parameter_is_in_one_group():
    _, model = basic_cnn()
    groups = param_groups(model, weight_decay=0.05, lr=1e-2, backbone_lr_scale=0.1)
    assert groups[0]["lr"] == 1e-2
    assert sorted({round(g["lr"], 9) for g in groups}) == [1e-3, 1e-2]
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    assert all(g["weight_decay"] == 0.0 for g in groups if g["params"]
               and g["params"][0].ndim == 1)


def test_without_scaling_the_groups_are_decay_and_no_decay():
    _, model = basic_cnn()
    groups = param_groups(model, weight_decay=0.05, lr=1e-3)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]


def test_unknown_model_options_and_weights_are_clear_errors():
    spec, _ = basic_cnn()
    with pytest.raises(ConfigError, match="does not take weights") as info:
        build_model(spec, 2, spec.preprocess, TrainConfig(weights="x.pth"))
    assert "hidden" in info.value.hint
    with pytest.raises(ConfigError, match="does not take depth"):
        build_model(spec, 2, spec.preprocess, TrainConfig(model_options={"depth": 3}))
    resnet = get_model("resnet-s").spec
    with pytest.raises(ConfigError, match="rejected its options: resnet-s depth must be 6n"):
        build_model(resnet, 2, resnet.preprocess, TrainConfig(model_options={"depth": 9}))
    model = build_model(spec, 2, spec.preprocess, TrainConfig(model_options={"hidden": 16}))
    assert model[7].out_features == 16


def test_frozen_training_run_leaves_the_backbone_untouched(colour_folder, tmp_path):
    import torch

    from imgcls.checkpoint import load_checkpoint
    from imgcls.train import fit

    result = fit(TrainConfig(data=str(colour_folder), epochs=2, batch_size=8, out=str(tmp_path),
                             freeze_backbone=True, augment="none", report=False,
                             ema=False))
    trained = load_checkpoint(result.best_path).model.state_dict()
    # The same seed builds the same initial weights; only the head may have moved.
    torch.manual_seed(0)
    spec = get_model("basic-cnn").spec
    fresh = spec.build(2, image_size=spec.input_size).state_dict()
    assert torch.equal(trained["0.weight"], fresh["0.weight"])
    assert torch.equal(trained["7.weight"], fresh["7.weight"])
    assert not torch.equal(trained["9.weight"], fresh["9.weight"])
