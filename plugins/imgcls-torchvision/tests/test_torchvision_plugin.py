"""The torchvision plugin: the whole zoo, each model's weights and their own preprocessing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import imgcls_torchvision as plugin
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from imgcls.errors import ConfigError
from imgcls.images import to_pixels
from imgcls.registry import get_model, list_models
from imgcls.weights import apply_weights

CATS_DOGS = Path(os.environ.get("IMGCLS_CATS_DOGS", "/work/shared/data/cats-dogs"))
# Distinct transform configurations: resize/crop, interpolation, input size.
REPRESENTATIVE = [("resnet50", "IMAGENET1K_V2"), ("resnet18", "IMAGENET1K_V1"),
                  ("convnext-tiny", "IMAGENET1K_V1"), ("efficientnet-b0", "IMAGENET1K_V1"),
                  ("efficientnet-v2-s", "IMAGENET1K_V1"), ("vit-b-16", "IMAGENET1K_V1"),
                  ("regnet-y-400mf", "IMAGENET1K_V2"), ("inception-v3", "IMAGENET1K_V1")]


def build(name: str, num_classes: int = 3, size: int = 224):
    return get_model(name).spec.build(num_classes, image_size=(size, size))


def torchvision_weights(name: str, tag: str):
    return getattr(torchvision.models.get_model_weights(plugin.ARCHITECTURES[name]), tag)


def test_every_torchvision_classification_model_is_registered_in_kebab_case():
    names = {e.spec.name for e in list_models() if e.plugin == "torchvision"}
    expected = {n.replace("_", "-") for n in torchvision.models.list_models(
        module=torchvision.models)}
    assert names == expected and len(names) >= 80
    assert {"resnet18", "resnet50", "mobilenet-v3-small", "mobilenet-v3-large",
            "efficientnet-b0", "convnext-tiny", "efficientnet-v2-s"} <= names


def _by_size(name: str):
    tv_name = plugin.ARCHITECTURES[name]
    params = torchvision.models.get_model_weights(tv_name).DEFAULT.meta["num_params"]
    return pytest.param(name, marks=pytest.mark.slow) if params > 15e6 else name


@pytest.mark.parametrize("name", [_by_size(n) for n in sorted(plugin.ARCHITECTURES)])
def test_every_model_builds_with_a_new_head_and_its_default_weights_preprocessing(name):
    spec = get_model(name).spec
    default = torchvision.models.get_model_weights(plugin.ARCHITECTURES[name]).DEFAULT
    assert spec.weights[0].tag == default.name
    assert spec.preprocess == spec.weights[0].preprocess == plugin.preprocess_of(default)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = spec.build(5, image_size=spec.input_size)
        logits = model.eval()(torch.zeros(1, 3, *spec.input_size))
    assert logits.shape == (1, 5)
    head = model.get_submodule(spec.head or [
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1])
    assert getattr(head, "out_features", getattr(head, "out_channels", None)) == 5


def _transform_fields(member) -> dict:
    """What a torchvision weights entry's own ``transforms()`` does, read off its attributes
    (not through the plugin's ``preprocess_of``), in imgcls's Preprocess terms."""
    from torchvision.transforms._presets import ImageClassification

    transform = member.transforms()
    # Every classification weight in the zoo uses ImageClassification: resize the shorter
    # side (antialiased, as imgcls's PIL resize is), centre-crop, scale to [0, 1], normalise.
    # Another preset would need its own mapping here.
    assert type(transform) is ImageClassification, f"{member}: {type(transform).__name__}"
    assert transform.antialias is True
    [crop], [resize] = transform.crop_size, transform.resize_size
    return {"size": (crop, crop), "resize": "shorter", "cover": resize,
            "interpolation": transform.interpolation.value, "mean": tuple(transform.mean),
            "std": tuple(transform.std)}


def _preprocess_fields(preprocess) -> dict:
    return {"size": preprocess.size, "resize": preprocess.resize,
            "cover": round(preprocess.size[0] / preprocess.crop_fraction),
            "interpolation": preprocess.interpolation, "mean": preprocess.mean,
            "std": preprocess.std}


@pytest.mark.parametrize("name", sorted(plugin.ARCHITECTURES))
def test_every_models_preprocessing_is_its_weights_own_transforms(name):
    """Each weights entry's Preprocess against torchvision's transform object itself
    (cheap: the weights enums only, nothing is built)."""
    spec = get_model(name).spec
    enum = torchvision.models.get_model_weights(plugin.ARCHITECTURES[name])
    assert spec.preprocess == spec.weights[0].preprocess and spec.weights[0].tag == \
        enum.DEFAULT.name
    assert {w.tag for w in spec.weights} == {m.name for m in enum}
    for weights in spec.weights:
        preprocess = weights.preprocess
        assert (preprocess.channel_order, preprocess.value_range) == ("RGB", (0.0, 1.0))
        expected = _transform_fields(getattr(enum, weights.tag))
        ours = _preprocess_fields(preprocess)
        for key in ("mean", "std"):
            assert ours.pop(key) == pytest.approx(expected.pop(key), abs=1e-7), (weights.tag, key)
        assert ours == expected, weights.tag


def test_weights_entries_carry_url_hash_categories_and_accuracy():
    spec = get_model("resnet50").spec
    tags = [w.tag for w in spec.weights]
    assert tags == ["IMAGENET1K_V2", "IMAGENET1K_V1"]  # DEFAULT first
    v2 = spec.weights[0]
    assert v2.url.endswith(f"-{v2.sha256}.pth") and len(v2.sha256) >= 8
    assert len(v2.categories) == 1000 and v2.categories[0] == "tench"
    assert v2.metrics["imagenet-1k-top1"] == pytest.approx(80.858)
    assert (v2.preprocess.size, v2.preprocess.crop_fraction) == ((224, 224), 224 / 232)
    total = sum(len(get_model(n).spec.weights) for n in plugin.ARCHITECTURES)
    assert total == sum(len(torchvision.models.get_model_weights(t))
                        for t in plugin.ARCHITECTURES.values())


def test_heads_without_a_linear_layer_and_auxiliary_classifiers():
    squeeze = get_model("squeezenet1-1").spec
    assert squeeze.head == "classifier.1"
    model = build("squeezenet1-1", 4, 64)
    assert model.get_submodule("classifier.1").out_channels == 4
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 4)
    with torch.device("meta"):
        googlenet = build("googlenet", 2, 64).train()
        assert googlenet(torch.zeros(2, 3, 64, 64)).shape == (2, 2)  # no auxiliary outputs


def images(tmp_path: Path) -> list[Image.Image]:
    """Generated images of several shapes, plus a few real photos when they are here."""
    rng = np.random.default_rng(0)
    found = []
    for width, height in ((500, 375), (333, 500), (301, 257), (640, 427)):
        coarse = rng.integers(0, 256, (height // 12 + 1, width // 12 + 1, 3), dtype=np.uint8)
        path = tmp_path / f"{width}x{height}.png"
        Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC).save(path)
        found.append(Image.open(path).convert("RGB"))
    photos = sorted((CATS_DOGS / "val" / "cats").glob("*.jpg"))[:3] if CATS_DOGS.is_dir() else []
    return found + [Image.open(p).convert("RGB") for p in photos]


@pytest.mark.parametrize(("name", "tag"), REPRESENTATIVE)
def test_preprocessing_equals_the_weights_own_transforms(name, tag, tmp_path):
    weights = next(w for w in get_model(name).spec.weights if w.tag == tag)
    transform = torchvision_weights(name, tag).transforms()
    for image in images(tmp_path):
        expected = transform(image).numpy()
        ours = weights.preprocess.apply(to_pixels(image, weights.preprocess))[0]
        assert ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_torchvision_weights_load_through_imgcls(tmp_path, monkeypatch):
    """A file under torchvision's own name in the cache is used offline, aux keys dropped."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")
    source = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    spec = get_model("googlenet").spec
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / spec.weights[0].url.rsplit("/", 1)[-1])
    model = build("googlenet", 2, 64)
    record = apply_weights(spec, model, "imagenet")
    assert record["tag"] == "IMAGENET1K_V1" and record["sha256"] == spec.weights[0].sha256
    assert torch.equal(model.conv1.conv.weight, source.conv1.conv.weight)
    assert model.fc.out_features == 2


@pytest.mark.slow
def test_vit_weights_fit_another_input_size(tmp_path):
    source = torchvision.models.vit_b_32(weights=None)
    path = tmp_path / "vit.pth"
    torch.save(source.state_dict(), path)
    model = build("vit-b-32", 2, 64)
    plugin.load_weights("vit_b_32", model, path)
    assert model.encoder.pos_embedding.shape[1] == (64 // 32) ** 2 + 1
    assert torch.equal(model.conv_proj.weight, source.conv_proj.weight)


def test_a_state_dict_for_another_torchvision_model_is_one_clear_error(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ConfigError, match="does not fit resnet18") as info:
        apply_weights(get_model("resnet18").spec, build("resnet18", 2, 64), str(path))
    assert str(path) in info.value.message


def test_fine_tune_from_imagenet_weights_with_head_first_epochs(tmp_path, monkeypatch):
    from imgcls.checkpoint import load_checkpoint
    from imgcls.train import TrainConfig, fit

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")  # the cached file is used without the network
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                folder / f"{i}.png")
    spec = get_model("resnet18").spec
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), cache / spec.weights[0].url.rsplit("/", 1)[-1])
    result = fit(TrainConfig(model="resnet18", data=str(tmp_path / "data"), epochs=1,
                             batch_size=4, img_size=64, augment="none", weights="imagenet",
                             freeze_backbone_epochs=1, out=str(tmp_path / "runs"),
                             report=False))
    loaded = load_checkpoint(result.best_path)
    state = loaded.model.state_dict()
    # One head-only epoch: the backbone, its BatchNorm statistics included, is untouched.
    assert torch.equal(state["layer4.1.conv2.weight"], source.layer4[1].conv2.weight)
    assert torch.equal(state["layer1.0.bn1.running_mean"], source.layer1[0].bn1.running_mean)
    assert state["fc.weight"].shape == (2, 512)
    assert loaded.manifest["training"]["weights"]["tag"] == "IMAGENET1K_V1"
    assert loaded.preprocess.crop_fraction == 0.875 and loaded.preprocess.size == (64, 64)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet-v3-small", "efficientnet-b0",
                                  "regnet-x-400mf"])
def test_cam_layers_have_a_feature_map(name):
    from imgcls.explain.layers import map_layers

    spec = get_model(name).spec
    model = build(name, 3, 64).eval()
    layer = spec.cam_layer(model)
    shapes = map_layers(model, torch.zeros(1, 3, 64, 64))
    channels, height, width = shapes[layer]
    assert channels >= 256 and height == width == 2  # the last block: 64 px / 32


def test_models_details_show_a_torchvision_models_accuracy_categories_and_preprocessing(capsys):
    from imgcls.cli import main

    default = torchvision.models.ResNet18_Weights.DEFAULT
    assert main(["models", "--details", "resnet18", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["weights"]
    assert row["tag"] == default.name == "IMAGENET1K_V1" and row["default"]
    assert row["categories"] == len(default.meta["categories"]) == 1000
    assert row["metrics"] == {"imagenet-1k-top1": 69.758, "imagenet-1k-top5": 89.078}
    assert main(["models", "--details", "resnet18"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert ("preprocessing: 224x224, shorter side to 256 then centre crop (crop 0.875), "
            "bilinear, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)") in lines
    [weights_line] = [line for line in lines if "IMAGENET1K_V1 (default)" in line]
    assert " 1000 " in weights_line  # the categories column
    assert "imagenet-1k-top1 69.758, imagenet-1k-top5 89.078" in weights_line
