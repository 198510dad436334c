"""GPU training check: basic-cnn and deep-cnn, with and without --amp, 2 epochs each.

On a CUDA machine it asserts training ran on the GPU and prints images/s (the
second epoch's, after cuDNN warm-up) and validation accuracy for each run. On a
machine without CUDA it prints "no GPU" and exits 0.

    python benchmarks/gpu_train_check.py [--data PATH] [--epochs 2]

Data: --data, else ../shared/data/cats-dogs beside the repository, else shapes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware import print_header  # benchmarks/hardware.py

from imgcls.train import TrainConfig, fit
from imgcls.train.progress import Reporter

CATS_DOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats-dogs"


class DeviceRecorder(Reporter):
    """Remembers the device and precision fit() reports, and each epoch's throughput."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.speeds: list[float] = []

    def start(self, info: dict[str, Any]) -> None:
        self.info = info

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        self.speeds.append(record["images_per_second"])


def run(model: str, data: str, amp: bool, epochs: int, out: str) -> dict[str, Any]:
    recorder = DeviceRecorder()
    started = time.perf_counter()
    result = fit(TrainConfig(model=model, data=data, epochs=epochs, device="cuda", amp=amp,
                             out=out, report=False, workers=4), recorder)
    seconds = time.perf_counter() - started
    device = recorder.info["device"]
    assert device.type == "cuda", f"{model} trained on {device}, not on the GPU"
    return {"model": model, "precision": recorder.info["precision"],
            "images/s": recorder.speeds[-1], "val acc": result.history[-1]["val_acc"],
            "wall s": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print_header()
    if not torch.cuda.is_available():
        print("no GPU")
        return 0
    data = args.data or (str(CATS_DOGS) if CATS_DOGS.is_dir() else "shapes")
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, data: {data}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="imgcls-gpu-check-") as out:
        for model in ("basic-cnn", "deep-cnn"):
            for amp in (False, True):
                rows.append(run(model, data, amp, args.epochs, out))
                print(f"  done: {model} amp={amp}", flush=True)
    print(f"{'model':<10} {'precision':<9} {'images/s':>9} {'val acc':>8} {'wall s':>7}")
    for row in rows:
        print(f"{row['model']:<10} {row['precision']:<9} {row['images/s']:>9.0f} "
              f"{row['val acc']:>8.2%} {row['wall s']:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
