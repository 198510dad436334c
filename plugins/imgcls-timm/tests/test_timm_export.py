"""ONNX export through the parity gate for a representative set of timm architectures.

Random weights (nothing is downloaded) at 64 px; int8 is tried too and must either pass
its gate or be refused as a whole (no file), and the outcome is printed per model.
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
    "timm/efficientnet_b0",              # EfficientNet
    "timm/tf_efficientnet_lite0",        # EfficientNet-Lite (TF "same" padding)
    "timm/mobilenetv3_small_050",        # MobileNetV3
    "timm/mobilenetv4_conv_small_050",   # MobileNetV4
    "timm/convnext_atto",                # ConvNeXt
    "timm/regnetx_002",                  # RegNet
    "timm/deit_tiny_patch16_224",        # ViT / DeiT, position embeddings sized for 64 px
]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("calibration"), per_class=24, size=80)


@pytest.mark.slow
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_exports_through_the_parity_gate(name, tmp_path, calibration):
    spec = get_model(name).spec
    preprocess = spec.preprocess.with_size(SIZE)
    torch.manual_seed(0)
    model = spec.build(3, image_size=preprocess.size).eval()
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", model,
                                 make_manifest(name, {}, ["a", "b", "c"], preprocess))
    result = export_onnx(checkpoint, tmp_path / "m.onnx", calibration=str(calibration))
    assert result.parity.passed
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (2, 3)
    int8_path = tmp_path / "m.int8.onnx"
    try:
        quantised = export_onnx(checkpoint, int8_path, int8=True, calibrate=str(calibration),
                                calib_images=16)
    except ExportError as exc:
        assert "int8 gate failed" in exc.message and not int8_path.exists()
        print(f"{name}: float parity {result.parity.max_abs_diff:.2e}; int8 refused: "
              f"{exc.message}")
    else:
        assert quantised.quantization.passed and int8_path.is_file()
        print(f"{name}: float parity {result.parity.max_abs_diff:.2e}; int8 passed, "
              f"top-1 agreement {quantised.quantization.top1_agreement:.3f}")
