"""The hardware line every benchmark prints first: a speed means little without it.

CPU model, cores, the vector extensions that decide torch's and onnxruntime's CPU
speed (AVX2, AVX-512, VNNI for int8, BF16 and AMX for bf16 autocast), torch's threads
and the GPU. imgcls's ``--amp`` runs bf16 on a CPU only with AVX512-BF16 or AMX;
elsewhere it trains in fp32, at about a quarter of the speed of such a CPU.

    from hardware import print_header
    print_header()
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# /proc/cpuinfo flag -> the name the docs use.
FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI",
            "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


def cpu_info(path: str | Path = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """The CPU's model name and flags (Linux); the platform's name and no flags elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return model, flags


def features(flags: set[str]) -> str:
    """``AVX2 yes, AVX-512 no, ...`` for each of FEATURES."""
    return ", ".join(f"{name} {'yes' if flag in flags else 'no'}"
                     for flag, name in FEATURES.items())


def cpu_bf16(flags: set[str]) -> bool:
    """Whether ``--amp`` trains in bf16 on this CPU (else it warns and stays fp32)."""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def gpu() -> str:
    try:
        import torch
    except ImportError:
        return "unknown (no torch)"
    if not torch.cuda.is_available():
        return "none"
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def threads() -> str:
    try:
        import torch
    except ImportError:
        return "unknown"
    return str(torch.get_num_threads())


def header(path: str | Path = "/proc/cpuinfo") -> str:
    model, flags = cpu_info(path)
    load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"hardware: {model}, {os.cpu_count()} cores ({features(flags)}); "
            f"CPU --amp: {'bf16' if cpu_bf16(flags) else 'fp32 (no bf16 on this CPU)'}; "
            f"torch threads {threads()}; GPU {gpu()}{load}")


def print_header() -> None:
    print(header(), flush=True)


if __name__ == "__main__":
    print_header()
