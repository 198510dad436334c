"""Mixed precision: which autocast dtype to use, and a GradScaler when fp16 needs one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ConfigError

_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Precision:
    """fp32 when ``dtype`` is None, else autocast to ``dtype`` on ``device_type``."""

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        return _NAMES.get(self.dtype, "fp32") if self.dtype is not None else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
        enabled = self.dtype == torch.float16
        return torch.amp.GradScaler(self.device_type if enabled else "cpu", enabled=enabled)


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bf16 kernels (AVX512-BF16 or AMX) on this CPU."""
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(amp: bool, amp_dtype: str, device: torch.device,
                      warn: Callable[[str], None]) -> Precision:
    """The precision for ``--amp``/``--amp-dtype`` on ``device``; warns when it falls back."""
    if not amp:
        return Precision(device.type)
    if device.type == "cuda":
        if amp_dtype == "fp16" or (amp_dtype == "auto" and not torch.cuda.is_bf16_supported()):
            return Precision("cuda", torch.float16)
        return Precision("cuda", torch.bfloat16)
    if amp_dtype == "fp16":
        raise ConfigError("--amp-dtype fp16 needs a CUDA GPU.",
                          "Use --amp-dtype bf16 (or auto) on the CPU.")
    if not cpu_supports_bf16():
        warn("this CPU has no native bf16 support; --amp is ignored and training uses fp32.")
        return Precision(device.type)
    return Precision(device.type, torch.bfloat16)
