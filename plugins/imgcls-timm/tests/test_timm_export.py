"""ONNX export through the parity gate for a representative set of timm architectures.

Random weights (nothing is downloaded) at 64 px, one model per family whose export has
its own pitfalls. int8 is tried on three of them (a plain, a depthwise and a grouped-convolution
network) and must either pass its gate or be refused as a whole (no file); the outcome is
printed.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from timm_helpers import class_folders

from imgcls.checkpoint import save_checkpoint
from imgcls.errors import ExportError
from imgcls.export import export_onnx
from imgcls.manifest import make_manifest
from imgcls.registry import get_model

SIZE = 64
REPRESENTATIVE = [
    "timm/resnet10t",                    # ResNet
    "timm/tf_efficientnet_lite0",        # EfficientNet-Lite (TF "same" padding)
    "timm/mobilenetv3_small_050",        # MobileNetV3
    "timm/mobilenetv4_conv_small_050",   # MobileNetV4
    "timm/convnext_atto",                # ConvNeXt
    "timm/regnetx_002",                  # RegNet (grouped convolutions)
    "timm/deit_tiny_patch16_224",        # ViT / DeiT, position embeddings sized for 64 px
]
# EfficientNet-B0 left the list: its layers are those of Lite0.
INT8 = ["timm/resnet10t", "timm/mobilenetv4_conv_small_050", "timm/regnetx_002"]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("calibration"), per_class=24, size=80)


def _checkpoint(name, tmp_path):
    spec = get_model(name).spec
    preprocess = spec.preprocess.with_size(SIZE)
    torch.manual_seed(0)
    model = spec.build(3, image_size=preprocess.size).eval()
    return save_checkpoint(tmp_path / "m.safetensors", model,
                           make_manifest(name, {}, ["a", "b", "c"], preprocess))


@pytest.mark.slow
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_exports_through_the_parity_gate(name, tmp_path, calibration):
    result = export_onnx(_checkpoint(name, tmp_path), tmp_path / "m.onnx",
                         calibration=str(calibration))
    assert result.parity.passed
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (2, 3)
    print(f"{name}: float parity {result.parity.max_abs_diff:.2e}")


@pytest.mark.slow
@pytest.mark.parametrize("name", INT8)
def test_int8_passes_its_gate_or_is_refused_whole(name, tmp_path, calibration):
    int8_path = tmp_path / "m.int8.onnx"
    try:
        quantised = export_onnx(_checkpoint(name, tmp_path), int8_path, int8=True,
                                calibrate=str(calibration), calib_images=16)
    except ExportError as exc:
        assert "int8 gate failed" in exc.message and not int8_path.exists()
        print(f"{name}: int8 refused: {exc.message}")
    else:
        assert quantised.quantization.passed and int8_path.is_file()
        print(f"{name}: int8 passed, top-1 agreement "
              f"{quantised.quantization.top1_agreement:.3f}")
