"""GPU check for export and inference: CUDA provider active, IO binding, CPU vs CUDA speed.

    python benchmarks/gpu_infer_check.py [--paths 20000]

On a machine without a usable CUDA GPU (or without onnxruntime-gpu) it prints
why and exits 0. Otherwise it trains basic-cnn for one epoch on tiny generated
shapes, exports it (float32, and fp16 with embedded preprocessing), then:

1. runs `imgcls infer --device cuda` and `--device cpu` on the same @list and
   checks that the CUDA run's summary names CUDAExecutionProvider and that both
   give the same labels;
2. checks the in-process runner: CUDA active, IO binding in use, outputs equal
   to the CPU provider's;
3. prints images/s on pre-decoded batches for the CPU and CUDA providers;
4. runs the fp16 model on CUDA and TensorRT when onnxruntime offers it (TensorRT
   failing to start is reported, not fatal).

Exits 1 with a message when a check fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]
TINY_SHAPES = {"classes": 3, "train_per_class": 200, "val_per_class": 30, "size": 64}


def why_not_ready() -> str | None:
    """None when CUDA inference can run here, else the reason it cannot."""
    import onnxruntime as ort

    from imgcls.infer.providers import CUDA, gpu_available

    if not gpu_available():
        return "no GPU: the CUDA driver reports no device"
    if CUDA not in ort.get_available_providers():
        return (f"no GPU provider: onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                "(pip install onnxruntime-gpu)")
    return None


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"FAILED: {message}")
        raise SystemExit(1)
    print(f"ok: {message}")


def prepare(folder: Path, count: int) -> tuple[Path, Path, Path]:
    """(fp32 model, fp16+embedded model, @list of ``count`` paths)."""
    from imgcls.data import load_dataset
    from imgcls.export import export_onnx
    from imgcls.train import TrainConfig, fit

    result = fit(TrainConfig(model="basic-cnn", data="shapes", data_options=dict(TINY_SHAPES),
                             epochs=1, batch_size=32, augment="none", out=str(folder),
                             name="gpu-check"))
    plain = export_onnx(result.best_path, folder / "model.onnx").path
    half = export_onnx(result.best_path, folder / "half.onnx", fp16=True,
                       embed_preprocessing=True).path
    val = [str(path) for path, _ in load_dataset("shapes", dict(TINY_SHAPES)).val]
    listing = folder / "paths.txt"
    listing.write_text("".join(val[i % len(val)] + "\n" for i in range(count)))
    return plain, half, listing


def cli_infer(model: Path, listing: Path, device: str, folder: Path) -> tuple[dict, list]:
    out, summary = folder / f"preds-{device}.csv", folder / f"summary-{device}.json"
    command = [sys.executable, "-m", "imgcls", "infer", str(model), f"@{listing}", "-o",
               str(out), "--device", device, "--summary-json", str(summary)]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(command, capture_output=True, text=True,
                          env=os.environ | {"PYTHONPATH": path})
    check(done.returncode == 0, f"imgcls infer --device {device} exits 0 ({done.stderr[-500:]})")
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return json.loads(summary.read_text()), rows


def model_rate(runner, pixels, seconds: float = 2.0) -> float:
    runner.probabilities(pixels)  # warm-up: kernels, buffers
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        runner.probabilities(pixels)
        calls += 1
    return calls * len(pixels) / (time.perf_counter() - started)


def runner_checks(plain: Path, half: Path, listing: Path) -> None:
    import numpy as np

    from imgcls.errors import DeviceError
    from imgcls.images import load_pixels
    from imgcls.infer.providers import CUDA, TENSORRT, _available
    from imgcls.infer.runners import OnnxRunner

    cpu, cuda = OnnxRunner(plain, "cpu"), OnnxRunner(plain, "cuda")
    check(cuda.providers[0] == CUDA, f"session providers are {cuda.providers}")
    check(cuda._binding is not None, "the CUDA runner uses IO binding")
    paths = listing.read_text().split()[:256]
    pixels = np.stack([load_pixels(p, cpu.preprocess) for p in paths])
    diff = np.abs(cpu.probabilities(pixels) - cuda.probabilities(pixels)).max()
    check(diff < 1e-4, f"CPU and CUDA probabilities agree (max diff {diff:.2e})")
    check(np.allclose(cuda.probabilities(pixels[:7]), cpu.probabilities(pixels[:7]), atol=1e-4),
          "an odd-sized batch through IO binding agrees too")
    fp16 = OnnxRunner(half, "cuda")
    agree = (fp16.probabilities(pixels).argmax(1) == cpu.probabilities(pixels).argmax(1)).mean()
    check(agree >= 0.98, f"fp16 + embedded preprocessing on CUDA: top-1 agreement {agree:.1%}")
    for batch in (64, 256):
        part = pixels[:batch]
        rates = {name: model_rate(r, part) for name, r in
                 (("CPU", cpu), ("CUDA", cuda), ("CUDA fp16+embedded", fp16))}
        print(f"batch {batch}, pre-decoded: " + " | ".join(
            f"{name} {rate:,.0f} img/s" for name, rate in rates.items())
            + f" | CUDA / CPU {rates['CUDA'] / rates['CPU']:.1f}x")
    if TENSORRT in _available():
        try:
            trt = OnnxRunner(plain, "tensorrt")
            print(f"TensorRT: active ({trt.providers}); {model_rate(trt, pixels[:64]):,.0f} "
                  "img/s at batch 64")
        except DeviceError as exc:
            print(f"TensorRT: not usable here: {exc.message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=20000, help="paths for imgcls infer")
    args = parser.parse_args(argv)
    print_header()
    sys.path.insert(0, str(ROOT))
    reason = why_not_ready()
    if reason:
        print(f"{reason}; nothing to check on this machine.")
        return 0
    with tempfile.TemporaryDirectory(prefix="imgcls-gpu-") as tmp:
        folder = Path(tmp)
        os.environ["IMGCLS_CACHE_DIR"] = str(folder / "cache")
        plain, half, listing = prepare(folder, args.paths)
        cuda_summary, cuda_rows = cli_infer(plain, listing, "cuda", folder)
        check(cuda_summary["provider"] == "CUDAExecutionProvider",
              f"imgcls infer --device cuda ran on {cuda_summary['provider']}")
        cpu_summary, cpu_rows = cli_infer(plain, listing, "cpu", folder)
        same = sum(a["label"] == b["label"] for a, b in zip(cuda_rows, cpu_rows, strict=True))
        check(same == len(cpu_rows) == args.paths, f"same labels on {same}/{args.paths} images")
        for name, summary in (("cuda", cuda_summary), ("cpu", cpu_summary)):
            print(f"imgcls infer --device {name}: {summary['images_per_second']:,.0f} img/s, "
                  f"batch latency p50 {summary['batch_latency_ms']['p50']} ms "
                  f"p95 {summary['batch_latency_ms']['p95']} ms")
        runner_checks(plain, half, listing)
    print("all GPU checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
