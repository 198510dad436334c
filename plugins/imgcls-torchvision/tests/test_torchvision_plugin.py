"""The torchvision plugin: heads, frozen backbones, local weights, no downloads."""

from __future__ import annotations

import pickle

import imgcls_torchvision as plugin
import pytest
import torch
import torchvision

from imgcls.errors import ConfigError
from imgcls.registry import get_model


def build(name: str, num_classes: int = 3, **options):
    return get_model(name).spec.build(num_classes, image_size=(224, 224), **options)


@pytest.mark.parametrize("name", sorted(plugin.ARCHITECTURES))
def test_every_architecture_gets_a_new_head(name):
    assert get_model(name).plugin == "torchvision"
    model = build(name, 5)
    head = model.get_submodule(plugin.ARCHITECTURES[name][1])
    assert isinstance(head, torch.nn.Linear) and head.out_features == 5


def test_the_new_head_is_the_last_linear_layer():
    from imgcls.train.optim import head_name

    for name, (_, head_path) in plugin.ARCHITECTURES.items():
        assert head_name(build(name)) == head_path


def test_local_weights_file_is_loaded(tmp_path):
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = build("resnet18", weights=str(path))
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 3


def test_missing_weights_never_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        build("resnet18", weights="imagenet")
    assert str(tmp_path) in info.value.hint and "does not download" in info.value.hint
    assert not any(tmp_path.rglob("*.pth"))
    with pytest.raises(ConfigError, match="not found"):
        build("resnet18", weights=str(tmp_path / "nope.pth"))


class _Evil:
    def __reduce__(self):
        return (exec, ("open('MARKER', 'w').write('pwned')",))


# torch notes the hand-made pickle's protocol (4) before refusing it.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_in_a_weights_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"fc.weight": _Evil()}))
    with pytest.raises(ConfigError, match="Cannot read weights"):
        build("resnet18", weights=str(path))
    assert not (tmp_path / "MARKER").exists()


def test_fine_tune_from_a_local_file_with_a_frozen_backbone(tmp_path):
    from imgcls.checkpoint import load_checkpoint
    from imgcls.train import TrainConfig, fit

    rng = torch.Generator().manual_seed(0)
    for name in ("cat", "dog"):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for i in range(6):
            pixels = (torch.rand(40, 40, 3, generator=rng) * 255).to(torch.uint8).numpy()
            from PIL import Image

            Image.fromarray(pixels).save(folder / f"{i}.png")
    source = torchvision.models.resnet18(weights=None)
    weights = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), weights)
    result = fit(TrainConfig(model="resnet18", data=str(tmp_path / "data"), epochs=1,
                             batch_size=4, img_size=64, augment="none", weights=str(weights),
                             freeze_backbone=True, out=str(tmp_path / "runs"), report=False))
    loaded = load_checkpoint(result.best_path)
    assert "weights" not in loaded.manifest["model"]["options"]
    state = loaded.model.state_dict()
    assert torch.equal(state["layer4.1.conv2.weight"], source.layer4[1].conv2.weight)
    assert state["fc.weight"].shape == (2, 512)


@pytest.mark.parametrize("name", sorted(plugin.ARCHITECTURES))
def test_every_architecture_names_a_cam_layer_with_a_feature_map(name):
    from imgcls.explain.layers import map_layers

    spec = get_model(name).spec
    model = build(name).eval()
    shapes = map_layers(model, torch.zeros(1, 3, 64, 64))
    assert spec.cam_layer == plugin.CAM_LAYERS[name] and spec.cam_layer in shapes
    channels, height, width = shapes[spec.cam_layer]
    assert channels >= 512 and height == width == 2  # the last block: 64 px / 32
