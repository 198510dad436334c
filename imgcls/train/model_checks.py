"""Checks on a model a plugin builds, before any training: its size and its output shape."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, PluginError
from ..registry import get_model
from ..specs import ModelSpec


def _plugin(spec: ModelSpec) -> str:
    try:
        return get_model(spec.name).plugin
    except Exception:  # a spec made in code, not registered: its name alone then
        return "?"


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _meta_bytes(spec: ModelSpec, num_classes: int, size: Any, options: dict[str, Any]
                ) -> int | None:
    """The weights' bytes, from a build on the meta device (no memory); None if it cannot."""
    if not options or "weights" in options:  # defaults are sane; weights mean nothing on meta
        return None
    try:
        with torch.device("meta"):
            model = spec.build(num_classes, image_size=size, **options)
    except Exception:  # some builders cannot run on meta: the real build decides then
        return None
    return sum(t.numel() * t.element_size()
               for t in list(model.parameters()) + list(model.buffers()))


def build_within_memory(spec: ModelSpec, num_classes: int, size: Any,
                        options: dict[str, Any]) -> nn.Module:
    """``spec.build`` with its options; options that need more memory than there is fail first.

    A size like ``--model-opt hidden=10000000000`` asks for terabytes: the estimate
    on the meta device refuses it before anything is allocated, and an allocator
    failure of the real build becomes the same one-line error.
    """
    need, have = _meta_bytes(spec, num_classes, size, options), physical_memory()
    if need is not None and have is not None and need > have:
        raise _too_big(spec, options, f"its weights alone take {need / 2**30:,.1f} GiB, "
                       f"more than this machine's {have / 2**30:,.1f} GiB")
    try:
        return spec.build(num_classes, image_size=size, **options)
    except MemoryError as exc:
        raise _too_big(spec, options, "there is not enough memory") from exc
    except RuntimeError as exc:
        if "alloc" not in str(exc).lower() and "memory" not in str(exc).lower():
            raise
        raise _too_big(spec, options, str(exc).splitlines()[0]) from exc


def _too_big(spec: ModelSpec, options: dict[str, Any], why: str) -> ConfigError:
    shown = ", ".join(f"{key}={value}" for key, value in options.items()) or "its defaults"
    return ConfigError(f"Model {spec.name!r} with {shown} is too large: {why}.",
                       "Use smaller --model-opt values (`imgcls models` lists the defaults).")


def check_output_shape(model: nn.Module, spec: ModelSpec, num_classes: int, size: Any) -> None:
    """Run one image through ``model`` on the CPU: it must give one score per class.

    A plugin model with the wrong head would otherwise fail in the metrics after a
    whole epoch, with an error that does not name it.
    """
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, height, width))
    except (torch.cuda.OutOfMemoryError, MemoryError):
        return  # memory is no shape problem: training reports it with its own advice
    except Exception as exc:
        raise PluginError(f"Model {spec.name!r} of plugin {_plugin(spec)!r} failed on a "
                          f"{height}x{width} image: {type(exc).__name__}: {exc}",
                          "Check the model's options and --img-size, or report it to the "
                          "plugin's authors.") from exc
    finally:
        model.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (1, num_classes):
        raise PluginError(f"Model {spec.name!r} of plugin {_plugin(spec)!r} outputs {shape} for "
                          f"one image of {num_classes} classes; it must output (1, "
                          f"{num_classes}).", "Its build(num_classes, ...) must end in a layer "
                          "of num_classes outputs; report it to the plugin's authors.")
