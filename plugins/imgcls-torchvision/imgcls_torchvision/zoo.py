"""The torchvision zoo: every classification model with its weights and preprocessing."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from imgcls.specs import ModelSpec, Preprocess, WeightsSpec
from imgcls.weights import HASH_IN_NAME, load_state_dict, read_state_dict

# imgcls name -> torchvision builder name: the whole classification zoo.
ARCHITECTURES: dict[str, str] = {
    name.replace("_", "-"): name
    for name in torchvision.models.list_models(module=torchvision.models)}

# Auxiliary classifiers (GoogLeNet, Inception v3) help only their own ImageNet training:
# imgcls builds without them and drops their weights.
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
IMAGENET_CLASSES = 1000


def preprocess_of(weights: Any) -> Preprocess:
    """imgcls's Preprocess for a torchvision weights entry, from its own ``transforms()``.

    ``ImageClassification`` resizes the shorter side to ``resize_size``, centre-crops
    ``crop_size`` and normalises: imgcls's ``shorter`` mode with crop = crop / resize.
    """
    transform = weights.transforms()
    crop, resize = transform.crop_size[0], transform.resize_size[0]
    return Preprocess(size=(crop, crop), resize="shorter", crop_fraction=crop / max(crop, resize),
                      interpolation=transform.interpolation.value,
                      mean=tuple(float(v) for v in transform.mean),
                      std=tuple(float(v) for v in transform.std))


def weights_of(tv_name: str) -> tuple[WeightsSpec, ...]:
    """Every weights entry of a torchvision model, its DEFAULT first."""
    enum = torchvision.models.get_model_weights(tv_name)
    members = [enum.DEFAULT, *(m for m in enum if m is not enum.DEFAULT)]
    return tuple(_weights_spec(tv_name, member) for member in members)


def _weights_spec(tv_name: str, member: Any) -> WeightsSpec:
    meta = member.meta
    name = member.url.rsplit("/", 1)[-1]
    match = HASH_IN_NAME.search(name)
    metrics = {f"{dataset.lower()}-{key.replace('acc@', 'top')}": float(value)
               for dataset, values in meta.get("_metrics", {}).items()
               for key, value in values.items()}
    return WeightsSpec(member.name, preprocess_of(member), url=member.url,
                       sha256=match.group(1) if match else None,
                       categories=tuple(meta.get("categories") or ()), metrics=metrics,
                       load=functools.partial(load_weights, tv_name))


def load_weights(tv_name: str, model: nn.Module, path: Path | None) -> None:
    """Load a torchvision weights file into a model built by :func:`make_builder`."""
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(AUX_PREFIXES)}
    if tv_name.startswith("vit_"):
        state = _resize_position_embedding(model, state)
    load_state_dict(model, state, head_of(tv_name), source=str(path),
                    architecture=tv_name.replace("_", "-"))


def _resize_position_embedding(model: nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """A ViT built for another input size: interpolate the weights' position embedding."""
    from torchvision.models.vision_transformer import interpolate_embeddings

    key = "encoder.pos_embedding"
    if key in state and state[key].shape != model.state_dict()[key].shape:
        state = interpolate_embeddings(model.image_size, model.patch_size, state)
    return state


def build_options(tv_name: str, image_size: tuple[int, int]) -> dict[str, Any]:
    """torchvision keyword arguments that depend on the architecture or the input size."""
    if tv_name.startswith("vit_"):
        return {"image_size": image_size[0]}
    if tv_name == "maxvit_t":
        return {"input_size": tuple(image_size)}
    if tv_name in ("googlenet", "inception_v3"):
        # transform_input: these weights expect it (torchvision sets it when it loads them).
        return {"aux_logits": False, "init_weights": False, "transform_input": True}
    return {}


def replace_head(model: nn.Module, num_classes: int) -> str:
    """A new classification layer for ``num_classes``; returns its dotted name.

    The head is the last nn.Linear; SqueezeNet, which has none, classifies with a 1x1
    convolution of 1,000 channels.
    """
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    convs = [n for n, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.out_channels == IMAGENET_CLASSES]
    name = linears[-1] if linears else convs[-1]
    old = model.get_submodule(name)
    new = (nn.Linear(old.in_features, num_classes) if isinstance(old, nn.Linear)
           else nn.Conv2d(old.in_channels, num_classes, kernel_size=1))
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
    return name


@contextlib.contextmanager
def block_widths_on_cpu(tv_name: str) -> Iterator[None]:
    """RegNet computes its block widths with tensors (``.tolist()``), which the meta device
    (imgcls's shape checks and listing) cannot do: compute them on the CPU meanwhile."""
    from torchvision.models.regnet import BlockParams

    if not tv_name.startswith("regnet") or torch.empty(0).device.type != "meta":
        yield
        return
    original = BlockParams.__dict__["from_init_params"]

    def on_cpu(cls: type, *args: Any, **kwargs: Any) -> Any:
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        BlockParams.from_init_params = original


def make_builder(tv_name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, image_size: tuple[int, int] = (224, 224)) -> nn.Module:
        options = build_options(tv_name, image_size)
        with block_widths_on_cpu(tv_name):
            model = torchvision.models.get_model(tv_name, weights=None, **options)
        replace_head(model, num_classes)
        return model

    build.__doc__ = f"torchvision {tv_name} with a new head for num_classes (no weights)."
    return build


def cam_layer(tv_name: str, model: nn.Module) -> str:
    """The last conv block, for class-activation maps: ResNet's layer4, else ``features``
    (RegNet's ``trunk_output``), else the last convolution.

    Swin's ``features`` are channels-last, so it takes its last convolution too.
    """
    names = dict(model.named_children())
    blocks = () if tv_name.startswith("swin") else ("layer4", "features", "trunk_output")
    found = next((n for n in blocks if n in names), None)
    return found or [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][-1]


def head_of(tv_name: str) -> str | None:
    """The head's name where it is not the last nn.Linear (SqueezeNet's conv)."""
    return "classifier.1" if tv_name.startswith("squeezenet") else None


def model_spec(name: str, tv_name: str) -> ModelSpec:
    weights = weights_of(tv_name)
    default = weights[0]
    top1 = default.metrics.get("imagenet-1k-top1")
    accuracy = f", ImageNet top-1 {top1:.1f}%" if top1 else ""
    # ViTs are built for the input size (their position embedding is interpolated).
    min_size = (32,) if tv_name.startswith("vit_") else \
        torchvision.models.get_model_weights(tv_name).DEFAULT.meta.get("min_size", (32,))
    return ModelSpec(name, make_builder(tv_name), default.preprocess,
                     f"torchvision {tv_name} ({default.tag}{accuracy}); --weights imagenet to "
                     "fine-tune.", min_size=max(16, int(min_size[0])),
                     cam_layer=functools.partial(cam_layer, tv_name), weights=weights,
                     head=head_of(tv_name))


def register_zoo(register: Callable[[ModelSpec], None]) -> None:
    """Register every architecture (the plugin's ``register_models``)."""
    for name, tv_name in ARCHITECTURES.items():
        register(model_spec(name, tv_name))
