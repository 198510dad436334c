"""torchvision architectures as imgcls models, with offline fine-tuning from local weights.

imgcls never downloads anything: ``weights=PATH`` loads a torchvision state-dict file
the user already has; ``weights=imagenet`` looks for torchvision's own file name in the
torch hub cache and says where to put it when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from imgcls import hookimpl
from imgcls.errors import ConfigError
from imgcls.specs import ModelSpec, Preprocess

IMAGENET = Preprocess(size=(224, 224), resize="shorter", crop_fraction=0.875,
                      interpolation="bilinear", mean=(0.485, 0.456, 0.406),
                      std=(0.229, 0.224, 0.225))

# imgcls name -> (torchvision builder name, dotted path of the classification layer)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "resnet18": ("resnet18", "fc"),
    "resnet50": ("resnet50", "fc"),
    "mobilenet-v3-small": ("mobilenet_v3_small", "classifier.3"),
    "mobilenet-v3-large": ("mobilenet_v3_large", "classifier.3"),
    "efficientnet-b0": ("efficientnet_b0", "classifier.1"),
    "convnext-tiny": ("convnext_tiny", "classifier.2"),
}

# The last conv block, whose activations class-activation maps (imgcls explain) are
# computed on: ResNet's last stage, the others' whole feature extractor.
CAM_LAYERS: dict[str, str] = {name: "layer4" if tv.startswith("resnet") else "features"
                              for name, (tv, _) in ARCHITECTURES.items()}


def hub_weights_path(tv_name: str) -> Path:
    """Where torchvision itself would cache the default ImageNet weights file."""
    url = torchvision.models.get_model_weights(tv_name).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _resolve_weights(tv_name: str, weights: str) -> Path:
    path = hub_weights_path(tv_name) if weights == "imagenet" else Path(weights).expanduser()
    if not path.is_file():
        url = torchvision.models.get_model_weights(tv_name).DEFAULT.url
        raise ConfigError(
            f"Weights file not found: {path}",
            f"imgcls does not download weights. Fetch {url} on a machine with internet access "
            f"and pass its path with --weights PATH (or place it at "
            f"{hub_weights_path(tv_name)} and use weights=imagenet).",
        )
    return path


def _load_state_dict(model: nn.Module, path: Path) -> None:
    # weights_only refuses pickled code: a weights file from the internet cannot run anything.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ConfigError(f"Cannot read weights file {path}: {exc}",
                          "Pass a torchvision state-dict (.pth) file.") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{path} does not match this architecture: {exc}",
                          "Use the weights file made for this exact model.") from exc


def _replace_head(model: nn.Module, head_path: str, num_classes: int) -> None:
    parent_path, _, attr = head_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr) if not attr.isdigit() else parent[int(attr)]
    head = nn.Linear(old.in_features, num_classes)
    if attr.isdigit():
        parent[int(attr)] = head
    else:
        setattr(parent, attr, head)


def make_builder(tv_name: str, head_path: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, image_size: tuple[int, int] = (224, 224),
              weights: str | None = None) -> nn.Module:
        model = torchvision.models.get_model(tv_name, weights=None)
        if weights:
            _load_state_dict(model, _resolve_weights(tv_name, str(weights)))
        # The new head is the model's last nn.Linear, which imgcls's --freeze-backbone
        # and --backbone-lr-scale act on.
        _replace_head(model, head_path, num_classes)
        return model

    build.__doc__ = f"torchvision {tv_name} with a new {head_path} head for num_classes."
    return build


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for name, (tv_name, head_path) in ARCHITECTURES.items():
        register(ModelSpec(
            name, make_builder(tv_name, head_path), IMAGENET,
            f"torchvision {tv_name}; --weights PATH|imagenet to fine-tune.", min_size=32,
            cam_layer=CAM_LAYERS[name]))
