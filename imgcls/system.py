"""The machine: which devices exist, how many cores, how many workers by default,
where imgcls caches files, and how the C allocator treats the tensors that training
frees every step."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DeviceError

if TYPE_CHECKING:
    import torch

TRAIN_DEVICES = ("auto", "cpu", "cuda")
INFER_DEVICES = (*TRAIN_DEVICES, "tensorrt")


def cache_dir() -> Path:
    """Where imgcls keeps generated data and decoded-image caches."""
    env = os.environ.get("IMGCLS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "imgcls"


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when the CUDA driver reports a GPU.

    Asked of libcuda directly (no torch import, and onnxruntime is never asked
    to start CUDA on a machine without one, so CPU users see no error spam).
    """
    try:
        libcuda = ctypes.CDLL("libcuda.so.1" if os.name != "nt" else "nvcuda.dll")
    except OSError:
        return False
    count = ctypes.c_int(0)
    if libcuda.cuInit(0) != 0 or libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return False
    return count.value > 0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda``/``cuda:N`` must exist."""
    import torch

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


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(gpu: bool = False) -> int:
    """Decode workers: one per core up to 8 when the CPU also runs the model.

    With a GPU running the model, decoding is all the CPU does, so every core but
    the one feeding the GPU decodes (figures in docs/inference.md).
    """
    cores = usable_cores()
    return max(1, min(32, cores - 1)) if gpu else max(1, min(8, cores))


def max_workers() -> int:
    """The most decode workers imgcls starts: 4 per usable core, and never under 32.

    More only queue for the same cores; a million would stall the machine starting.
    """
    return max(32, 4 * usable_cores())


# mallopt() parameters (glibc's malloc.h) and the largest mmap threshold it accepts.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
_TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Let glibc keep the buffers a training step frees, for the next step to reuse.

    By default glibc serves every block over its mmap threshold (128 KiB, raised
    only by the sizes freed so far) with a fresh mmap and trims the heap top back
    to the kernel, so a CPU training step page-faults and zero-fills its
    activations afresh: basic-cnn's first epoch ran at half the speed of the
    second (benchmarks/train_throughput.py). Blocks up to 32 MiB now come from the
    heap, and up to 1 GiB of freed heap stays mapped. True when applied (Linux, glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries: left as they are
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
