"""Every registered model (built-ins and installed plugins) honours the model contract.

It builds for 2 and 1,000 classes, trains a step at its default input size, and
exports to ONNX with a dynamic batch axis and PyTorch parity (a zoo's models at 64 px).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from imgcls.checkpoint import save_checkpoint
from imgcls.export import export_onnx
from imgcls.manifest import make_manifest
from imgcls.registry import list_models

# Plugins that register a whole zoo (torchvision's 80 models, timm's 3,000) are represented
# by a few architectures here; their own tests cover the rest (imgcls-timm's export test
# takes a representative set through the parity gate).
# The smallest of each zoo: full-size networks belong in benchmarks, and the timm
# plugin's export test covers EfficientNet-Lite, MobileNetV3/V4, ConvNeXt and DeiT.
ZOOS = {"torchvision": {"resnet18", "mobilenet-v3-small"},
        "timm": {"timm/resnet10t"}}
MODELS = [entry.spec.name for entry in list_models()
          if entry.plugin not in ZOOS or entry.spec.name in ZOOS[entry.plugin]]
# Large ImageNet-size networks take seconds each on 2 CPU cores.
HEAVY = {"resnet50", "convnext-tiny", "efficientnet-b0", "mobilenet-v3-large"}
ZOO_EXPORT_SIZE = 64  # tracing and parity of a 224-px ImageNet network cost 2-3x more


def spec_of(name: str):
    return next(entry.spec for entry in list_models() if entry.spec.name == name)


def params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


@pytest.mark.parametrize("name", params(MODELS))
@pytest.mark.parametrize("num_classes", [2, 1000])
def test_builds_and_trains_a_step(name, num_classes):
    spec = spec_of(name)
    torch.manual_seed(0)
    model = spec.build(num_classes, image_size=spec.input_size)
    model.train()
    x = torch.rand(2, 3, *spec.input_size)
    logits = model(x)
    assert logits.shape == (2, num_classes)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, num_classes - 1]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", params(MODELS))
def test_exports_with_parity_and_dynamic_batch(name, tmp_path):
    spec = spec_of(name)
    zoo = any(name in members for members in ZOOS.values())
    preprocess = (spec.preprocess.with_size(max(ZOO_EXPORT_SIZE, spec.min_size)) if zoo
                  else spec.preprocess)
    torch.manual_seed(0)
    model = spec.build(1000, image_size=preprocess.size).eval()
    classes = [f"class-{i}" for i in range(1000)]
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", model,
                                 make_manifest(name, {}, classes, preprocess))
    result = export_onnx(checkpoint, tmp_path / "m.onnx")
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((3, 3, *preprocess.size), dtype=np.float32)
    assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (3, 1000)
