"""Ray vs `imgcls infer`: images/s on the same photos and the same cores, side by side.

    python benchmarks/inference_ray.py [--data DIR] [--repeat 8] [--rounds 2] [--cpus 2]

basic-cnn (untrained weights: speed does not depend on them) on the cats-dogs val
photos, listed once (the short list) and --repeat times (the long one); this process
and everything it starts are pinned to --cpus cores.

- Start-up counted: the long list through the whole command, `imgcls infer` and
  `imgcls infer --engine ray --engine-opt num_cpus=N` (a fresh process: Python,
  imports, and for Ray the local cluster's start and stop), images / wall seconds.
- Start-up not counted: the marginal rate, (long - short) images / (long - short)
  seconds, so every fixed cost cancels. For `imgcls infer`, of the whole commands;
  for Ray, of the engine in a process already connected to a running N-CPU cluster
  (as with --engine-opt address=...), after a warm-up run.

Printed: the four rates and ray / imgcls infer for each. Rounds are interleaved;
each figure is the median. Needs the imgcls-ray plugin; without the photos it says
so and exits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cats-dogs" / "val"
MODEL = "basic-cnn"


def make_model(folder: Path) -> Path:
    """An untrained 2-class basic-cnn exported to ONNX."""
    import torch

    from imgcls.checkpoint import save_checkpoint
    from imgcls.export import export_onnx
    from imgcls.manifest import make_manifest
    from imgcls.registry import get_model

    spec = get_model(MODEL).spec
    torch.manual_seed(0)
    network = spec.build(2, image_size=spec.input_size).eval()
    checkpoint = save_checkpoint(folder / f"{MODEL}.safetensors", network,
                                 make_manifest(MODEL, {}, ["cats", "dogs"], spec.preprocess))
    return export_onnx(checkpoint, folder / f"{MODEL}.onnx").path


def cli_seconds(model: Path, listing: Path, folder: Path, *engine: str) -> float:
    """Wall seconds of one whole `imgcls infer` command."""
    command = [sys.executable, "-m", "imgcls", "infer", str(model), f"@{listing}",
               "-o", str(folder / "preds.csv"), *engine]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def engine_seconds(model: Path, listing: Path, folder: Path) -> float:
    """Wall seconds of the Ray engine on the cluster this process joined."""
    from imgcls_ray.engine import run_ray

    from imgcls.infer.batch import InferOptions

    started = time.perf_counter()
    run_ray(model, [f"@{listing}"], InferOptions(output=folder / "warm.csv"))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="a folder of photos")
    parser.add_argument("--repeat", type=int, default=8, help="times the photos are listed")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--cpus", type=int, default=2, help="cores for both engines")
    args = parser.parse_args(argv)
    print_header()
    sys.path.insert(0, str(ROOT))
    if not Path(args.data).is_dir():
        print(f"error: {args.data} not found; pass --data with a folder of photos")
        return 2
    import ray

    from imgcls.infer.sources import iter_paths

    cores = sorted(os.sched_getaffinity(0))[:args.cpus]
    os.sched_setaffinity(0, cores)  # inherited by the commands and Ray's workers
    photos = list(iter_paths([args.data]))
    paths = photos * args.repeat
    print(f"{len(paths)} paths ({len(photos)} photos x {args.repeat}) from {args.data}; "
          f"{MODEL}; {len(cores)} cores; ray {ray.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}")
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="imgcls-bench-ray-") as tmp:
        folder = Path(tmp)
        short, long = folder / "short.txt", folder / "long.txt"
        short.write_text("\n".join(photos) + "\n")
        long.write_text("\n".join(paths) + "\n")
        extra = len(paths) - len(photos)
        model = make_model(folder)
        ray_cli = ("--engine", "ray", "--engine-opt", f"num_cpus={len(cores)}")
        for _ in range(args.rounds):
            local = [cli_seconds(model, listing, folder) for listing in (short, long)]
            figures.setdefault("local counted", []).append(len(paths) / local[1])
            figures.setdefault("local marginal", []).append(extra / (local[1] - local[0]))
            wall = cli_seconds(model, long, folder, *ray_cli)
            figures.setdefault("ray counted", []).append(len(paths) / wall)
        ray.init(address="local", num_cpus=len(cores), include_dashboard=False,
                 log_to_driver=False, logging_level="warning")
        try:
            engine_seconds(model, short, folder)  # starts the cluster's worker processes
            for _ in range(args.rounds):
                warm = [engine_seconds(model, listing, folder) for listing in (short, long)]
                figures.setdefault("ray marginal", []).append(extra / (warm[1] - warm[0]))
        finally:
            ray.shutdown()
    _print(figures)
    return 0


def _print(figures: dict[str, list[float]]) -> None:
    rate = {key: statistics.median(values) for key, values in figures.items()}
    for label, key in (("imgcls infer, start-up counted (whole command)", "local counted"),
                       ("imgcls infer, start-up not counted (marginal)", "local marginal"),
                       ("ray, start-up counted (whole command, cluster start)", "ray counted"),
                       ("ray, start-up not counted (marginal, running cluster)",
                        "ray marginal")):
        print(f"  {label:<56} {rate[key]:8.1f} images/s")
    for what in ("counted", "marginal"):
        print(f"  ray / imgcls infer, start-up {'counted' if what == 'counted' else 'not counted'}"
              f": {rate[f'ray {what}'] / rate[f'local {what}']:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
