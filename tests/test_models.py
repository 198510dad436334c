"""Built-in models: the tutorial architecture, output shapes, sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgcls.registry import get_model


@pytest.mark.parametrize("name", ["basic-cnn", "deep-cnn"])
@pytest.mark.parametrize("num_classes", [2, 37])
def test_output_shape(name, num_classes):
    spec = get_model(name).spec
    model = spec.build(num_classes, image_size=spec.input_size)
    x = torch.rand(3, 3, *spec.input_size)
    logits = model(x)
    assert logits.shape == (3, num_classes)
    logits.sum().backward()


def test_basic_cnn_is_the_tutorial_architecture():
    model = get_model("basic-cnn").spec.build(2, image_size=(64, 64))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten",
                     "Linear", "ReLU", "Linear"]
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (3, 3), (0, 0)), (32, 32, (3, 3), (0, 0))]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    # 64 -> conv 62 -> pool 31 -> conv 29 -> pool 14: 32 * 14 * 14 features
    assert (linears[0].in_features, linears[0].out_features) == (32 * 14 * 14, 128)
    assert linears[1].out_features == 2


def test_deep_cnn_layers():
    model = get_model("deep-cnn").spec.build(2, image_size=(128, 128))
    convs = [m.out_channels for m in model if isinstance(m, nn.Conv2d)]
    assert convs == [32, 32, 64]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model)
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [64, 2]


def test_models_follow_the_requested_image_size():
    spec = get_model("basic-cnn").spec
    model = spec.build(5, image_size=(96, 80))
    assert model(torch.rand(2, 3, 96, 80)).shape == (2, 5)


def test_too_small_image_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        get_model("deep-cnn").spec.build(2, image_size=(16, 16))
