"""Size and cost of a model at its default input size: parameters and multiply-accumulates."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import Entry
from .specs import ModelSpec


def count_macs(model: torch.nn.Module, image_size: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass on one image (FLOPs / 2)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *image_size))
    return counter.get_total_flops() // 2


def describe(entry: Entry[ModelSpec], num_classes: int = 2) -> dict[str, Any]:
    """One row of `imgcls models`: name, plugin, input size, parameters, MACs, description."""
    spec = entry.spec
    # Shapes are all that is counted: on the meta device nothing is allocated or
    # initialised, so listing a zoo of ImageNet networks takes no memory.
    with torch.device("meta"):
        model = spec.build(num_classes, image_size=spec.input_size)
        parameters = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, spec.input_size)
    return {
        "name": spec.name,
        "plugin": entry.plugin,
        "input_size": list(spec.input_size),
        "parameters": parameters,
        "macs": macs,
        "description": spec.description,
    }
