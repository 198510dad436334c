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


def test_freeze_backbone_leaves_only_the_head_trainable():
    model = build("resnet18", freeze_backbone=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}


def test_param_groups_scale_the_backbone_learning_rate():
    model = build("mobilenet-v3-small", backbone_lr_scale=0.1)
    backbone, head = model.imgcls_param_groups(1e-2)
    assert backbone["lr"] == pytest.approx(1e-3) and head["lr"] == 1e-2
    total = len(backbone["params"]) + len(head["params"])
    assert total == len(list(model.parameters()))


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


def test_pickled_code_in_a_weights_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"fc.weight": _Evil()}))
    with pytest.raises(ConfigError, match="Cannot read weights"):
        build("resnet18", weights=str(path))
    assert not (tmp_path / "MARKER").exists()
