"""Fine-tuning controls: --weights, --freeze-backbone, --backbone-lr-scale, model options."""

from __future__ import annotations

import warnings

import pytest

from imgcls import hookimpl
from imgcls.errors import ConfigError
from imgcls.plugins import load_plugins, pm
from imgcls.registry import get_model
from imgcls.specs import ModelSpec
from imgcls.train.config import TrainConfig
from imgcls.train.loop import build_model
from imgcls.train.optim import freeze_backbone, head_name, param_groups

from .helpers import colour_data, tiny_config


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


def test_unknown_model_options_are_clear_errors_and_weights_never_reach_the_builder():
    spec, _ = basic_cnn()
    # --weights is applied by training, not passed to the builder: any model takes a file.
    assert build_model(spec, 2, spec.preprocess, TrainConfig(weights="x.pth"))
    with pytest.raises(ConfigError, match="does not take depth") as info:
        build_model(spec, 2, spec.preprocess, TrainConfig(model_options={"depth": 3}))
    assert "hidden" in info.value.hint
    resnet = get_model("resnet-s").spec
    with pytest.raises(ConfigError, match="rejected its options: resnet-s depth must be 6n"):
        build_model(resnet, 2, resnet.preprocess, TrainConfig(model_options={"depth": 9}))
    model = build_model(spec, 2, spec.preprocess, TrainConfig(model_options={"hidden": 16}))
    assert model[7].out_features == 16


def test_fine_tuning_from_weights_gets_its_own_defaults_and_explicit_values_win():
    scratch, tuned = TrainConfig(), TrainConfig(weights="imagenet")
    assert (scratch.lr, scratch.warmup_epochs, scratch.label_smoothing,
            scratch.backbone_lr_scale) == (2e-3, 1.0, 0.0, 1.0)
    assert (tuned.lr, tuned.warmup_epochs, tuned.label_smoothing,
            tuned.backbone_lr_scale, tuned.optimizer) == (1e-3, 0.5, 0.1, 0.1, "adamw")
    mine = TrainConfig(weights="imagenet", lr=0.01, label_smoothing=0.0)
    assert (mine.lr, mine.label_smoothing, mine.backbone_lr_scale) == (0.01, 0.0, 0.1)
    assert "lr = 0.001" in tuned.to_toml()  # config.toml records what the run used


def test_the_run_summary_states_the_fine_tuning_settings():
    from imgcls.train.run_folder import recipe_note

    note = recipe_note(TrainConfig(weights="imagenet", freeze_backbone_epochs=2),
                       {"tag": "IMAGENET1K_V1"})
    assert note == ("fine-tuning from IMAGENET1K_V1: lr 0.001, adamw, warm-up 0.5 epochs, "
                    "label smoothing 0.1, backbone lr x0.1, head only for 2 epochs, then "
                    "everything")
    assert recipe_note(TrainConfig(), None) == ""


def test_batchnorm_keeps_its_statistics_while_the_backbone_is_frozen():
    import torch

    from imgcls.train.optim import train_mode

    spec = get_model("resnet-s").spec
    model = spec.build(2, image_size=(16, 16), depth=8)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    train_mode(model, frozen=True)
    assert norms and not any(m.training for m in norms) and model.training
    before = norms[0].running_mean.clone()
    model(torch.rand(4, 3, 16, 16))
    assert torch.equal(norms[0].running_mean, before)
    train_mode(model, frozen=False)
    assert all(m.training for m in norms)


def test_head_first_epochs_then_everything_from_a_weights_file(colour_folder, tmp_path):
    import torch

    from imgcls.checkpoint import load_checkpoint
    from imgcls.train import fit

    spec = get_model("resnet-s").spec
    torch.manual_seed(1)
    source = spec.build(2, image_size=(16, 16), depth=8)
    path = tmp_path / "pretrained.pth"
    torch.save(source.state_dict(), path)
    config = TrainConfig(model="resnet-s", model_options={"depth": 8}, data=str(colour_folder),
                         epochs=1, batch_size=8, img_size=16, out=str(tmp_path / "runs"),
                         augment="none", report=False, weights=str(path),
                         freeze_backbone_epochs=1)
    first = fit(config)
    after_head_only = load_checkpoint(first.run_dir / "best.safetensors").model.state_dict()
    head = head_name(source) + "."
    backbone = [k for k in source.state_dict() if not k.startswith(head)
                and k in after_head_only and after_head_only[k].is_floating_point()]
    assert backbone and all(torch.equal(after_head_only[k], source.state_dict()[k])
                            for k in backbone)  # weights and BatchNorm statistics
    last = torch.load(first.run_dir / "last.pt", weights_only=True)
    resumed = fit(resume=first.run_dir, epochs=3)
    assert resumed.history[-1]["epoch"] == 3
    state = torch.load(first.run_dir / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(state[k], last["model"][k]) for k in backbone)


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


def test_resize_overrides_the_models_crop_so_a_wide_image_stays_whole():
    from dataclasses import replace

    from imgcls.specs import Preprocess
    from imgcls.train.finetune import run_preprocess

    cropping = Preprocess(size=(224, 224), resize="shorter", crop_fraction=0.875,
                          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    spec = replace(get_model("basic-cnn").spec, preprocess=cropping)
    assert run_preprocess(spec, TrainConfig(img_size=96)) == cropping.with_size(96)
    stretched = run_preprocess(spec, TrainConfig(img_size=96, resize="stretch"))
    assert (stretched.resize, stretched.crop_fraction, stretched.size) == ("stretch", 1.0,
                                                                          (96, 96))
    assert stretched.mean == (0.5, 0.5, 0.5)  # the weights' normalisation stays
    plain = replace(spec, preprocess=Preprocess(size=(64, 64)))
    assert run_preprocess(plain, TrainConfig(resize="shorter")).resize == "shorter"
    with pytest.raises(ConfigError, match="resize"):
        TrainConfig(resize="squash").validate(spec)


class _LoadsInBuild:
    """A plugin written the old way: its build loads pretrained weights itself."""

    def __init__(self) -> None:
        base = get_model("basic-cnn").spec
        state = base.build(3, image_size=(16, 16)).state_dict()

        def build(num_classes: int, image_size=(16, 16), **options):
            model = base.build(num_classes, image_size=image_size, **options)
            model.load_state_dict(state)
            return model

        self.spec = ModelSpec("loads-in-build", build, base.preprocess)

    @hookimpl
    def register_models(self, register):
        register(self.spec)


def test_a_checkpoint_of_a_model_whose_build_loads_weights_loads_without_warnings(tmp_path):
    from imgcls.checkpoint import load_checkpoint
    from imgcls.train import fit

    load_plugins()
    pm.register(_LoadsInBuild(), name="loads-in-build")
    try:
        result = fit(tiny_config(colour_data(tmp_path / "data"), tmp_path / "runs",
                                 model="loads-in-build", epochs=1), verbose=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_checkpoint(result.best_path)  # its shapes are checked on the meta device
    finally:
        pm.unregister(name="loads-in-build")
    assert [str(w.message) for w in caught] == []
