"""What each layer makes of one image, and what the first conv layer has learned.

Feature maps are recorded with forward hooks on named modules, so they work for any
network: after every ``nn.Conv2d``, after every activation applied to a conv's map
(ReLU, SiLU, Hardswish, GELU ...), and after every pooling layer; maps of 1 x 1 pixel
(global pooling, squeeze-and-excitation) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .layers import is_map, recording
from .names import (
    ACTIVATION,
    ACTIVATIONS,
    CONV,
    POOL,
    POOLS,
    LayerName,
    kind_of,
    layer_names,
    named,
)

__all__ = ["ACTIVATION", "ACTIVATIONS", "CHANNELS", "CONV", "POOL", "POOLS", "FeatureMap",
           "feature_maps", "first_conv_filters", "kind_of"]

CHANNELS = 16  # as many channels of each map as the tutorial draws


@dataclass
class FeatureMap:
    """One layer's output for one image.

    ``name`` is the module's name in ``model.named_modules()`` (``name#2`` for its
    second call), ``shape`` the whole map's (C, H, W), ``maps`` its first channels,
    ``layer`` the names a user reads ("after ReLU 1", ``--layer relu1``).
    """

    name: str
    kind: str
    module: str
    shape: tuple[int, int, int]
    maps: np.ndarray
    layer: LayerName | None = None

    @property
    def label(self) -> str:
        return self.layer.label if self.layer else self.name


def feature_maps(model: nn.Module, inputs: torch.Tensor,
                 channels: int = CHANNELS) -> list[FeatureMap]:
    """The maps after each conv, activation and pool for ``inputs`` (1 x 3 x H x W)."""
    model.eval()
    with torch.no_grad(), recording(model, lambda name, module: kind_of(module) is not None
                                    ) as calls:
        model(inputs)
    found: list[FeatureMap] = []
    names = layer_names(model)
    conv_shape: torch.Size | None = None
    for call in calls:
        output = call.output
        if not is_map(output) or output.shape[2] * output.shape[3] <= 1:
            continue
        kind = kind_of(call.module)
        if kind == CONV:
            conv_shape = output.shape
        # An activation on anything else is not on a conv's N x C x H x W map (ConvNeXt's
        # GELU acts on channels-last tensors), so it cannot be drawn as channels.
        elif kind == ACTIVATION and output.shape != conv_shape:
            continue
        found.append(FeatureMap(call.name, kind or "", type(call.module).__name__,
                                tuple(output.shape[1:]),
                                output[0, :channels].float().cpu().numpy(),
                                named(names, call.name)))
    return found


def first_conv_filters(model: nn.Module, bgr: bool = False) -> tuple[str, np.ndarray]:
    """The first conv layer on the RGB input: its name and kernels as RGB tiles.

    Tiles are (out_channels, kh, kw, 3) float32, each kernel min-max scaled to [0, 1]
    on its own. ``bgr``: the model takes BGR input, so the channels are reversed.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3 and module.groups == 1:
            tiles = module.weight.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
            if bgr:
                tiles = tiles[..., ::-1]
            low = tiles.min(axis=(1, 2, 3), keepdims=True)
            span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
            return name, ((tiles - low) / np.maximum(span, 1e-12)).astype(np.float32)
    raise ConfigError("The model has no conv layer on its RGB input, so it has no filters "
                      "to draw.", "--filters needs a convolutional network.")
