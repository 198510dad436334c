"""The torchvision zoo as imgcls models, each with its weights and their preprocessing.

Every classification model ``torchvision.models.list_models`` lists is registered under its
kebab-case name (``resnet18``, ``convnext-tiny``, ``efficientnet-v2-s``). Each names its
torchvision weights (tag = the enum member's name, the default first) with the URL, the
sha256 prefix in the file name, the categories and ImageNet accuracy, and the
preprocessing derived from the weights' own ``transforms()``. imgcls fetches and applies
them only when training starts (``--weights imagenet``); building never loads them.

torch and torchvision are imported when a model is first needed (the names below come from
``zoo`` on first use): imgcls imports every plugin to list its commands (``imgcls --help``).
"""

from __future__ import annotations

from collections.abc import Callable

from imgcls import hookimpl
from imgcls.lazy import lazy_exports
from imgcls.specs import ModelSpec

__getattr__ = lazy_exports(__name__, dict.fromkeys((
    "ARCHITECTURES",
    "AUX_PREFIXES",
    "IMAGENET_CLASSES",
    "block_widths_on_cpu",
    "build_options",
    "cam_layer",
    "head_of",
    "load_weights",
    "make_builder",
    "model_spec",
    "preprocess_of",
    "replace_head",
    "weights_of",
), ".zoo"))


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    from .zoo import register_zoo

    register_zoo(register)
