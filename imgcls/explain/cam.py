"""Class-activation maps: the four methods of pytorch-grad-cam, and a fast Grad-CAM.

Every map is H x W float32 in [0, 1] at the model's input size, min-max scaled per
image, so maps of different images and methods are drawn on one colour scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, require_extra
from .layers import is_map, no_inplace

# --method name -> pytorch_grad_cam class. HiResCAM multiplies gradients and activations
# pixel by pixel instead of averaging the gradients per channel: for a network that ends
# in flatten + dense (basic-cnn, deep-cnn) that is the faithful map (Draelos & Carin 2020),
# where Grad-CAM's per-channel average mixes the evidence of every position.
# EigenCAM needs no gradients and no target: it is the first principal component of the
# layer's activations, the same for any class.
METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "layercam": "LayerCAM",
           "hirescam": "HiResCAM", "eigencam": "EigenCAM"}
CLASS_AGNOSTIC = frozenset({"eigencam"})


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"Unknown CAM method {method!r}.",
                          f"Use one of: {', '.join(METHODS)} (e.g. --method gradcam).")
    return method


def library_cams(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, method: str,
                 targets: list[int] | None) -> tuple[np.ndarray, torch.Tensor]:
    """CAMs (N x H x W) and logits, by pytorch-grad-cam; ``targets=None``: predicted classes."""
    pytorch_grad_cam = require_extra("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_class = getattr(pytorch_grad_cam, METHODS[check_method(method)])
    with no_inplace(model):
        cam = cam_class(model=model, target_layers=[layer])
        try:
            wanted = None if targets is None else [ClassifierOutputTarget(int(t))
                                                   for t in targets]
            maps = cam(input_tensor=inputs, targets=wanted)
            logits = cam.outputs.detach()
        finally:
            cam.activations_and_grads.release()
            model.zero_grad(set_to_none=True)  # the gradients pytorch-grad-cam left behind
    return np.asarray(maps, dtype=np.float32), logits


def _unit(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each N x H x W map to [0, 1], exactly as pytorch-grad-cam does."""
    shifted = maps - maps.amin(dim=(1, 2), keepdim=True)
    return shifted / (1e-7 + shifted.amax(dim=(1, 2), keepdim=True))


def grad_cams(model: nn.Module, inputs: torch.Tensor, layer: nn.Module,
              targets: torch.Tensor) -> np.ndarray:
    """Grad-CAM (N x H x W) for ``targets``, without importing pytorch-grad-cam.

    For report.html, whose time budget has no room for that import (about a second,
    it pulls in scikit-learn and OpenCV). It computes what ``library_cams(...,
    "gradcam")`` does (tests/test_explain.py compares them), but builds the autograd
    graph only from ``layer`` on: the layers before it run as in inference, and no
    weight gets a gradient.
    """
    kept: list[torch.Tensor] = []

    def cut(module: nn.Module, args: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            kept.append(output)
            return None
        kept.append(output.detach().requires_grad_(True))
        return kept[-1]

    trainable = [p for p in model.parameters() if p.requires_grad]
    handle = layer.register_forward_hook(cut)
    try:
        for param in trainable:
            param.requires_grad_(False)
        with no_inplace(model), torch.enable_grad():
            logits = model(inputs.detach())
            if not is_map(kept[0]):
                raise ConfigError("The CAM layer's output is not a feature map.",
                                  "Name a conv layer or block (ModelSpec.cam_layer, --layer).")
            score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
            (grads,) = torch.autograd.grad(score, kept[0])
    finally:
        handle.remove()
        for param in trainable:
            param.requires_grad_(True)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    maps = _unit(torch.relu((weights * kept[0].detach()).sum(dim=1)))
    maps = F.interpolate(maps[:, None], size=inputs.shape[2:], mode="bilinear",
                         align_corners=False)[:, 0]
    return _unit(maps).float().cpu().numpy()
