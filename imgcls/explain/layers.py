"""Named layers of a model: which ones have feature maps, the CAM layer, forward hooks.

Everything here works on ``model.named_modules()`` names, so it applies to the
built-in networks and to any plugin's (torchvision's ``layer4``, ``features.12``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..options import close_matches, did_you_mean
from .names import LayerName, named, resolve

# How many layer names an error message lists before it only counts the rest.
LISTED_NAMES = 12


@contextlib.contextmanager
def no_inplace(model: nn.Module) -> Iterator[None]:
    """Run ``model`` with its in-place activations switched to out-of-place.

    ``ReLU(inplace=True)`` after a conv overwrites the conv's output, which a hook
    has just kept: the conv's activations (and a CAM on them) would silently be the
    ReLU's. The values computed are the same either way.
    """
    switched = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for module in switched:
        module.inplace = False
    try:
        yield
    finally:
        for module in switched:
            module.inplace = True


@dataclass
class Call:
    """One call of a named module during a forward pass, and what it returned."""

    name: str
    module: nn.Module
    output: Any


@contextlib.contextmanager
def recording(model: nn.Module, keep: Callable[[str, nn.Module], bool] = lambda n, m: True,
              ) -> Iterator[list[Call]]:
    """Record each call of the named modules ``keep`` accepts, in call order.

    A module called twice (torchvision's BasicBlock uses one ReLU twice) is recorded
    twice, the second time as ``name#2``.
    """
    calls: list[Call] = []
    seen: dict[str, int] = {}

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            calls.append(Call(label, module, output))
        return hook

    handles = [module.register_forward_hook(hook_for(name))
               for name, module in model.named_modules() if name and keep(name, module)]
    try:
        with no_inplace(model):
            yield calls
    finally:
        for handle in handles:
            handle.remove()


def is_map(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 4


def map_layers(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, int, int]]:
    """Every named module whose output is an N x C x H x W map: name -> (C, H, W).

    Found by running ``example`` through the model once, in call order. These are
    the layers a class-activation map can be computed on.
    """
    with torch.no_grad(), recording(model) as calls:
        model(example)
    shapes: dict[str, tuple[int, int, int]] = {}
    for call in calls:
        base = call.name.split("#")[0]
        if is_map(call.output) and base not in shapes:
            shapes[base] = tuple(call.output.shape[1:])
    return shapes


def last_conv(model: nn.Module) -> str | None:
    """The name of the model's last ``nn.Conv2d`` (the CAM layer when a plugin names none)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    return names[-1] if names else None


def default_cam_layer(model: nn.Module, spec: Any) -> str | None:
    """The layer a model's plugin chose (``ModelSpec.cam_layer``), else its last conv."""
    chosen = getattr(spec, "cam_layer", None)
    if callable(chosen):
        chosen = chosen(model)
    return chosen or last_conv(model)


def check_layer(name: str | None, valid: dict[str, tuple[int, int, int]],
                names: dict[str, LayerName], model_name: str, requested: bool) -> str:
    """The module ``name`` means (a module name, ``relu2``, ``after ReLU 2``) when it is one
    of ``valid``; else a ConfigError that lists the valid ``--layer`` names."""
    found = resolve(name, names, list(valid)) if name is not None else None
    if found is not None:
        return found
    options = [named(names, module).option for module in valid]
    if requested:
        problem = f"Model {model_name!r} has no layer {name!r} with a feature map."
    elif name is None:
        problem = f"Model {model_name!r} has no conv layer to compute a CAM on."
    else:
        problem = (f"Model {model_name!r}: its plugin's CAM layer {name!r} has no feature "
                   "map.")
    if not options:
        raise ConfigError(problem, "Class-activation maps need a convolutional network.")
    close = close_matches(name or "", options)
    # The last layers are where CAMs are usually taken; the first ones rarely.
    listed = close + [n for n in options[::-1] if n not in close][:LISTED_NAMES - len(close)]
    more = len(options) - len(listed)
    hint = did_you_mean(name or "", options)
    hint += (f"Valid --layer names (last first): {', '.join(listed)}"
             + (f" and {more} more." if more else "."))
    raise ConfigError(problem, hint)
