"""Choosing where to compute: CUDA when present, else the CPU."""

from __future__ import annotations

import torch

from .errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda``/``cuda:N`` must exist."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is available.",
                              "Use --device cpu, or install a CUDA build of PyTorch.")
        return torch.device(name)
    raise DeviceError(f"Unknown device {name!r}.", "Use --device auto, cpu or cuda.")
