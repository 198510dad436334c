"""onnxruntime sessions: which execution providers to ask for, and proof they became active.

onnxruntime quietly falls back to the CPU when a GPU provider cannot start, so
every session asked to use a GPU is checked after creation and refused if the
provider it was asked for is not active.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any

from ..errors import CheckpointError, DeviceError
from ..system import INFER_DEVICES, gpu_available

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


def _available() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _unavailable(device: str) -> DeviceError:
    if device == "tensorrt":
        return DeviceError("TensorRT was requested but onnxruntime cannot use it here.",
                           "Install onnxruntime-gpu and TensorRT on a machine with an NVIDIA "
                           "GPU, or use --device cuda or --device cpu.")
    return DeviceError("CUDA was requested but onnxruntime cannot use a GPU here.",
                       "Install onnxruntime-gpu on a machine with an NVIDIA GPU, or use "
                       "--device cpu.")


def choose_providers(device: str) -> list[str]:
    """Providers to ask for, best first; ``auto`` picks CUDA only when a GPU is present."""
    device = (device or "auto").lower()
    if device not in INFER_DEVICES:
        raise DeviceError(f"Unknown device {device!r}.",
                          "Use --device auto, cpu, cuda or tensorrt.")
    if device == "cpu":
        return [CPU]
    available = _available()
    cuda_ok = CUDA in available and gpu_available()
    if device == "tensorrt":
        if not (cuda_ok and TENSORRT in available):
            raise _unavailable(device)
        return [TENSORRT, CUDA, CPU]
    if device == "cuda" and not cuda_ok:
        raise _unavailable(device)
    return [CUDA, CPU] if cuda_ok else [CPU]


def _provider_options(providers: list[str]) -> list[tuple[str, dict[str, str]]]:
    options: list[tuple[str, dict[str, str]]] = []
    for name in providers:
        if name == TENSORRT:
            from ..system import cache_dir

            # Building a TensorRT engine takes minutes; cache it across runs.
            engines = cache_dir() / "tensorrt"
            engines.mkdir(parents=True, exist_ok=True)
            options.append((name, {"trt_engine_cache_enable": "True",
                                   "trt_engine_cache_path": str(engines)}))
        else:
            options.append((name, {}))
    return options


def _preload_cuda_libraries() -> str:
    """Load CUDA and cuDNN from pip's nvidia-* packages when torch has not loaded them.

    Returns what onnxruntime printed while trying (advice, not errors: whether
    CUDA works is checked on the session itself).
    """
    import onnxruntime as ort

    if "torch" in sys.modules or not hasattr(ort, "preload_dlls"):
        return ""
    printed = io.StringIO()
    # preload_dlls prints; predictions may be going to stdout.
    with contextlib.redirect_stdout(printed):
        ort.preload_dlls(msvc=False)
    return printed.getvalue().strip()


def make_session(path: str | os.PathLike, device: str = "auto",
                 threads: int | None = None) -> Any:
    """An onnxruntime session; fails if a GPU provider was asked for but is not active.

    ``threads`` sets onnxruntime's intra-op thread count (None: its default).
    """
    import onnxruntime as ort

    device = (device or "auto").lower()
    providers = choose_providers(device)
    notes = _preload_cuda_libraries() if CUDA in providers else ""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), sess_options=options,
                                       providers=_provider_options(providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise CheckpointError(f"onnxruntime cannot load {path}: {exc}",
                              "Pass an .onnx file written by `imgcls export onnx`.") from exc
    check_active(session, device, notes)
    return session


def check_active(session: Any, device: str, notes: str = "") -> None:
    """Raise DeviceError when the provider asked for did not become active."""
    active = session.get_providers()
    wanted = {"cuda": CUDA, "tensorrt": TENSORRT}.get(device)
    if wanted and wanted not in active:
        raise DeviceError(
            f"{device.upper() if device == 'cuda' else 'TensorRT'} was requested but "
            f"onnxruntime fell back to {', '.join(active)}.",
            "Check that the CUDA, cuDNN (and TensorRT) versions match what onnxruntime-gpu "
            "needs; run with --device cpu meanwhile." + (f" onnxruntime said: {notes}"
                                                         if notes else ""))


def uses_cuda(session: Any) -> bool:
    active = session.get_providers()
    return CUDA in active or TENSORRT in active
