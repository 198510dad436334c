"""Peak memory of `imgcls infer` against the number of files: it should stay flat.

    python benchmarks/inference_memory.py [--counts 2000 20000] [--images 300]

Writes --images small generated PNGs, lists them repeatedly in @list files of
each --count paths, and runs `imgcls infer model.onnx @list -o preds.csv` in a
fresh process per count. Peak RSS is the largest resident set of the command
and its decode workers (getrusage of the waited-for children, read by a small
wrapper process so that earlier runs cannot count).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]

_WRAPPER = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_rss_mib(command: list[str]) -> float:
    """Peak RSS (MiB) of ``command`` and its descendants, run in a fresh wrapper."""
    result = subprocess.run([sys.executable, "-c", _WRAPPER, *command], check=True,
                            capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024  # Linux reports KiB


def write_images(folder: Path, count: int) -> list[str]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def export_model(folder: Path) -> Path:
    import torch

    from imgcls.checkpoint import save_checkpoint
    from imgcls.export import export_onnx
    from imgcls.manifest import make_manifest
    from imgcls.registry import get_model

    spec = get_model("basic-cnn").spec
    torch.manual_seed(0)
    model = spec.build(3, image_size=spec.input_size).eval()
    checkpoint = save_checkpoint(folder / "m.safetensors", model,
                                 make_manifest("basic-cnn", {}, ["a", "b", "c"], spec.preprocess))
    return export_onnx(checkpoint, folder / "m.onnx").path


def measure(model: Path, images: list[str], count: int, folder: Path) -> dict[str, float]:
    listing = folder / f"list_{count}.txt"
    with open(listing, "w") as handle:
        for i in range(count):
            handle.write(images[i % len(images)] + "\n")
    out, summary = folder / f"preds_{count}.csv", folder / f"summary_{count}.json"
    started = time.perf_counter()
    peak = peak_rss_mib([sys.executable, "-m", "imgcls", "infer", str(model), f"@{listing}",
                         "-o", str(out), "--summary-json", str(summary)])
    rate = json.loads(summary.read_text())["images_per_second"]
    return {"paths": count, "peak_rss_mib": peak, "images_per_second": rate,
            "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--images", type=int, default=300, help="distinct generated images")
    args = parser.parse_args(argv)
    print_header()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="imgcls-mem-") as tmp:
        folder = Path(tmp)
        images = write_images(folder / "images", args.images)
        model = export_model(folder)
        results = [measure(model, images, count, folder) for count in args.counts]
    base = results[0]["peak_rss_mib"]
    for row in results:
        print(f"{row['paths']:>8} paths: peak RSS {row['peak_rss_mib']:7.1f} MiB "
              f"({row['peak_rss_mib'] - base:+6.1f} MiB vs {results[0]['paths']}), "
              f"{row['images_per_second']:6.0f} img/s, {row['seconds']:5.1f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
