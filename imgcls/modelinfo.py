"""Size and cost of a model at its default input size; what `imgcls models` shows."""

from __future__ import annotations

import fnmatch
from typing import Any

from .registry import Entry
from .specs import ModelSpec, Preprocess, WeightsSpec


def count_macs(model: Any, image_size: tuple[int, int], device: str | None = None) -> int:
    """Multiply-accumulates of one forward pass on one image (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *image_size, device=device))
    return counter.get_total_flops() // 2


def measure(spec: ModelSpec, num_classes: int = 2, device: str = "meta") -> dict[str, int]:
    """Parameters and MACs, counted on the meta device: nothing is allocated or initialised
    (builders support it: checkpoints are checked against a meta-built model too)."""
    import torch

    with torch.device(device):
        model = spec.build(num_classes, image_size=spec.input_size)
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "macs": count_macs(model, spec.input_size, device)}


def describe(entry: Entry[ModelSpec], num_classes: int = 2, sized: bool = True) -> dict[str, Any]:
    """One row of `imgcls models`: name, plugin, input size, weights, parameters and MACs
    (None unless ``sized``: counting builds the model), description."""
    spec = entry.spec
    row: dict[str, Any] = {
        "name": spec.name,
        "plugin": entry.plugin,
        "input_size": list(spec.input_size),
        "weights": [w.tag for w in spec.weights],
        "parameters": None,
        "macs": None,
        "description": spec.description,
    }
    if sized:
        row.update(measure(spec, num_classes))
    return row


def matches(entry: Entry[ModelSpec], search: str | None, pretrained: bool) -> bool:
    """`imgcls models --search TEXT --pretrained`: every word of TEXT in the name, plugin
    or description (case-insensitive), or a glob (``*``, ``?``) on the name."""
    spec = entry.spec
    if pretrained and not spec.weights:
        return False
    if not search:
        return True
    if any(c in search for c in "*?["):
        return fnmatch.fnmatchcase(spec.name.lower(), search.lower())
    text = f"{spec.name} {entry.plugin} {spec.description}".lower()
    return all(word in text for word in search.lower().split())


def preprocess_text(preprocess: Preprocess) -> str:
    """``224x224, shorter side to 256 then centre crop, bicubic, mean ..., std ...``."""
    h, w = preprocess.size
    if preprocess.resize == "shorter":
        cover = int(min(h, w) / preprocess.crop_fraction + 1e-6)
        how = f"shorter side to {cover} then centre crop (crop {preprocess.crop_fraction:g})"
    else:
        how = "stretched"
    mean = ", ".join(f"{v:g}" for v in preprocess.mean)
    std = ", ".join(f"{v:g}" for v in preprocess.std)
    return f"{h}x{w}, {how}, {preprocess.interpolation}, mean ({mean}), std ({std})"


def weights_row(weights: WeightsSpec, default: bool) -> dict[str, Any]:
    """One pretrained weight set as `imgcls models --details` shows it."""
    return {
        "tag": weights.tag,
        "default": default,
        "source": weights.hub_id or weights.url or "",
        "sha256": weights.sha256,
        "categories": len(weights.categories),
        "metrics": dict(weights.metrics),
        "preprocess": weights.preprocess.to_dict(),
        "preprocess_text": preprocess_text(weights.preprocess),
    }


def details(entry: Entry[ModelSpec], num_classes: int = 2) -> dict[str, Any]:
    """Everything `imgcls models --details NAME` prints."""
    spec = entry.spec
    cam = spec.cam_layer if isinstance(spec.cam_layer, str) or spec.cam_layer is None \
        else "chosen from the built model"
    return {**describe(entry, num_classes, sized=False), **measure(spec, num_classes),
            "preprocess": spec.preprocess.to_dict(),
            "preprocess_text": preprocess_text(spec.preprocess),
            "head": spec.head, "cam_layer": cam, "min_size": spec.min_size,
            "weights": [weights_row(w, i == 0) for i, w in enumerate(spec.weights)]}
