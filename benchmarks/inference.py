"""Inference speed, measured side by side in one run on real photos.

    python benchmarks/inference.py [--data DIR] [--repeat 4] [--rounds 3] [--ray]

On the cats-dogs val photos (listed --repeat times, so each pass is long enough
to time), for basic-cnn and deep-cnn (untrained weights: speed does not depend
on them):

1. decode-only images/s: the shared decoder in the engine's DecodePool, with
   process and with thread workers, the worker count `imgcls infer` uses;
2. end-to-end `imgcls infer` images/s (its own summary: from the first path to
   the last row written; the interpreter's start-up is printed separately);
3. PyTorch eager vs onnxruntime images/s on pre-decoded batches of 64;
4. CPU time per image (user + system, workers and main process) of decode-only
   and of the infer job, and onnxruntime's alone on one thread: when the decode
   workers already fill every core, infer / decode-only can be no better than
   decode / (decode + onnxruntime), the "CPU bound" printed;
5. int8 against float for basic-cnn and resnet-s: `imgcls export onnx --int8`
   calibrated on --data (up to 256 photos; the rest are the gate's held-out
   photos), then images/s of both on the same pre-decoded batch of 64 (default
   threads and one thread), file sizes and top-1 agreement. When --data has a
   sibling train/ folder (cats-dogs/val -> cats-dogs), both models are first
   trained on the parent folder for --int8-epochs, so the agreement figure means
   something; without one they keep untrained weights (speed and size do not
   depend on them) and the gate is not applied.

``--workers N`` sets the decode workers of both (default: what `imgcls infer`
uses, one per core); with fewer workers than cores the model runs on the spare
core and the ratio shows how well decoding and inference overlap.

Rounds are interleaved so that load from other processes hits every variant
alike; each figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cats-dogs" / "val"
MODELS = ("basic-cnn", "deep-cnn")
INT8_MODELS = ("basic-cnn", "resnet-s")


def make_models(folder: Path) -> dict[str, Path]:
    """A 2-class checkpoint and its ONNX export per model."""
    import torch

    from imgcls.checkpoint import save_checkpoint
    from imgcls.export import export_onnx
    from imgcls.manifest import make_manifest
    from imgcls.registry import get_model

    exported = {}
    for name in MODELS:
        spec = get_model(name).spec
        torch.manual_seed(0)
        model = spec.build(2, image_size=spec.input_size).eval()
        checkpoint = save_checkpoint(folder / f"{name}.safetensors", model,
                                     make_manifest(name, {}, ["cats", "dogs"], spec.preprocess))
        exported[name] = export_onnx(checkpoint, folder / f"{name}.onnx").path
    return exported


def decode_rate(paths: list[str], preprocess, workers: int, backend: str) -> float:
    from imgcls.infer.engine import DecodePool

    with DecodePool(workers, backend) as pool:  # workers start before the clock
        started = time.perf_counter()
        count = sum(len(chunk.paths) for chunk in pool.imap(paths, preprocess))
        return count / (time.perf_counter() - started)


def infer_rate(model: Path, listing: Path, backend: str, folder: Path,
               workers: int) -> tuple[float, float]:
    """(images/s from the summary, wall seconds of the whole command)."""
    summary = folder / "summary.json"
    command = [sys.executable, "-m", "imgcls", "infer", str(model), f"@{listing}",
               "-o", str(folder / "preds.csv"), "--decode", backend, "--workers", str(workers),
               "--summary-json", str(summary)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    return json.loads(summary.read_text())["images_per_second"], wall


def model_rates(model: Path, checkpoint: Path, pixels, rounds: int) -> tuple[float, float]:
    """(torch eager, onnxruntime) images/s on one pre-decoded batch, default threads."""
    import torch

    from imgcls.checkpoint import load_checkpoint
    from imgcls.infer.providers import make_session

    loaded = load_checkpoint(checkpoint)
    batch = loaded.preprocess.apply(pixels)
    session = make_session(model, "cpu")
    name = session.get_inputs()[0].name
    tensor = torch.from_numpy(batch)

    def eager() -> None:
        with torch.inference_mode():
            loaded.model(tensor)

    def ort() -> None:
        session.run(None, {name: batch})

    rates: dict[str, list[float]] = {"torch": [], "ort": []}
    for _ in range(rounds):
        for key, run in (("torch", eager), ("ort", ort)):
            rates[key].append(len(batch) * _calls_per_second(run))
    return statistics.median(rates["torch"]), statistics.median(rates["ort"])


def cpu_ms_per_image(model: Path, listing: Path, paths: list[str], preprocess,
                     workers: int) -> dict[str, tuple[float, float]]:
    """CPU ms per image as (main process, decode workers) for decode-only and infer."""
    from imgcls.infer import InferOptions, run_inference

    def measure(job: Callable[[], object]) -> tuple[float, float]:
        before = _cpu_seconds()
        job()
        after = _cpu_seconds()  # the pool's workers are reaped by now: children count
        return tuple((a - b) * 1e3 / len(paths) for a, b in zip(after, before, strict=True))

    options = InferOptions(output=listing.with_name("cpu.csv"), workers=workers)
    return {"decode": measure(lambda: decode_rate(paths, preprocess, workers, "process")),
            "infer": measure(lambda: run_inference(model, [f"@{listing}"], options))}


def _cpu_seconds() -> tuple[float, float]:
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def ort_ms_per_image(model: Path, pixels, checkpoint: Path) -> float:
    """onnxruntime alone on one thread, batch 64: CPU ms per image."""
    from imgcls.checkpoint import load_checkpoint
    from imgcls.infer.providers import make_session

    batch = load_checkpoint(checkpoint).preprocess.apply(pixels)
    session = make_session(model, "cpu", threads=1)
    name = session.get_inputs()[0].name
    return 1e3 / (len(batch) * _calls_per_second(lambda: session.run(None, {name: batch})))


def _calls_per_second(run: Callable[[], None], seconds: float = 1.0) -> float:
    run()  # warm-up
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run()
        calls += 1
    return calls / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="a folder of photos")
    parser.add_argument("--repeat", type=int, default=4, help="times the photos are listed")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--workers", type=int, help="decode workers (default: imgcls infer's)")
    parser.add_argument("--int8-epochs", type=int, default=10,
                        help="epochs of training before the int8 rows (0: untrained weights)")
    parser.add_argument("--ray", action="store_true",
                        help="also the Ray rows (benchmarks/inference_ray.py: Ray local vs "
                             "imgcls infer, start-up counted and not; needs imgcls-ray)")
    args = parser.parse_args(argv)
    print_header()
    sys.path.insert(0, str(ROOT))
    from imgcls.infer.engine import BACKENDS, DEFAULT_BACKEND, default_workers
    from imgcls.infer.sources import iter_paths
    from imgcls.registry import get_model

    if not Path(args.data).is_dir():
        print(f"error: {args.data} not found; pass --data with a folder of photos")
        return 2
    photos = list(iter_paths([args.data]))
    paths = photos * args.repeat
    workers = args.workers or default_workers()
    print(f"{len(paths)} paths ({len(photos)} photos x {args.repeat}) from {args.data}; "
          f"{os.cpu_count()} cores, {workers} decode workers, default backend {DEFAULT_BACKEND}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="imgcls-bench-") as tmp:
        folder = Path(tmp)
        listing = folder / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        exported = make_models(folder)
        for name in MODELS:
            preprocess = get_model(name).spec.preprocess
            _compare(name, exported[name], paths, preprocess, workers, listing, folder,
                     args.rounds, BACKENDS)
            batch = _first_batch(photos, preprocess)
            _model_speed(name, exported[name], folder, batch, args.rounds)
            _cpu_budget(name, exported[name], folder, listing, paths, batch, preprocess, workers)
        for name in INT8_MODELS:
            _int8_rows(name, folder, args.data, photos, args.int8_epochs, args.rounds)
    if args.ray:
        import inference_ray  # beside this script; starts a Ray cluster, so only when asked

        inference_ray.main(["--data", args.data, "--rounds", str(args.rounds)])
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (other processes share the cores)")
    return 0


def _compare(name, model, paths, preprocess, workers, listing, folder, rounds, backends):
    decode = {b: [] for b in backends}
    e2e = {b: [] for b in backends}
    walls = {b: [] for b in backends}
    for _ in range(rounds):
        for backend in backends:
            decode[backend].append(decode_rate(paths, preprocess, workers, backend))
            rate, wall = infer_rate(model, listing, backend, folder, workers)
            e2e[backend].append(rate)
            walls[backend].append(wall)
    print(f"\n{name} ({preprocess.size[0]}x{preprocess.size[1]}), median of {rounds} rounds:")
    for backend in backends:
        d, e = statistics.median(decode[backend]), statistics.median(e2e[backend])
        wall = statistics.median(walls[backend])
        # Each round measures both back to back: its ratio is the least disturbed by load.
        ratio = statistics.median(a / b for a, b in zip(e2e[backend], decode[backend],
                                                        strict=True))
        print(f"  {backend:<8} decode-only {d:7.0f} img/s | imgcls infer {e:7.0f} img/s | "
              f"infer / decode-only {ratio:5.1%} (median of per-round ratios) | command wall "
              f"{wall:.1f} s\n           rounds: decode {[round(x) for x in decode[backend]]} "
              f"infer {[round(x) for x in e2e[backend]]}")
    if len(backends) == 2:
        a, b = backends
        print(f"  decode-only {a}/{b}: "
              f"{statistics.median(decode[a]) / statistics.median(decode[b]):.2f}x; "
              f"imgcls infer {a}/{b}: {statistics.median(e2e[a]) / statistics.median(e2e[b]):.2f}x")


def _first_batch(photos, preprocess):
    """The first 64 photos decoded: the pre-decoded batch the model-only figures use."""
    import numpy as np

    from imgcls.images import load_pixels

    return np.stack([load_pixels(p, preprocess) for p in photos[:64]])


def _model_speed(name, model, folder, pixels, rounds):
    eager, ort = model_rates(model, folder / f"{name}.safetensors", pixels, rounds)
    print(f"  batch 64, pre-decoded: torch eager {eager:7.0f} img/s | onnxruntime {ort:7.0f} "
          f"img/s | onnxruntime / eager {ort / eager:.1f}x")


def _cpu_budget(name, model, folder, listing, paths, pixels, preprocess, workers):
    cpu = cpu_ms_per_image(model, listing, paths, preprocess, workers)
    ort = ort_ms_per_image(model, pixels, folder / f"{name}.safetensors")
    decode, infer = sum(cpu["decode"]), sum(cpu["infer"])
    print(f"  CPU ms per image (main + workers): decode-only {decode:.3f} "
          f"({cpu['decode'][0]:.3f} + {cpu['decode'][1]:.3f}) | imgcls infer {infer:.3f} "
          f"({cpu['infer'][0]:.3f} + {cpu['infer'][1]:.3f}) | onnxruntime alone, 1 thread "
          f"{ort:.3f}\n  with every core decoding, infer / decode-only <= decode / (decode + "
          f"onnxruntime) = {decode / (decode + ort):.1%} (CPU bound); this run's CPU ratio "
          f"{decode / infer:.1%}")


def _int8_checkpoint(name: str, folder: Path, data: str, epochs: int) -> tuple[Path, str]:
    """A trained checkpoint when --data has a train/ sibling, else untrained weights."""
    parent = Path(data).resolve().parent
    if epochs < 1 or not (parent / "train").is_dir():
        return make_checkpoint(name, folder), "untrained weights"
    import contextlib
    import io

    from imgcls.train import fit

    with contextlib.redirect_stdout(io.StringIO()):
        result = fit(model=name, data=str(parent), epochs=epochs, out=str(folder / "runs"),
                     name=name, report=False, exist_ok=True)
    return result.best_path, (f"trained {epochs} epochs on {parent.name}, val acc "
                              f"{result.best['val_acc']:.3f}")


def make_checkpoint(name: str, folder: Path) -> Path:
    import torch

    from imgcls.checkpoint import save_checkpoint
    from imgcls.manifest import make_manifest
    from imgcls.registry import get_model

    spec = get_model(name).spec
    torch.manual_seed(0)
    model = spec.build(2, image_size=spec.input_size).eval()
    return save_checkpoint(folder / f"{name}-int8-base.safetensors", model,
                           make_manifest(name, {}, ["cats", "dogs"], spec.preprocess))


def int8_rates(float_path: Path, int8_path: Path, batch, rounds: int,
               threads: int | None) -> tuple[float, float, float]:
    """(float, int8) images/s on one batch, interleaved rounds, and the median ratio."""
    from imgcls.infer.providers import make_session

    sessions = [make_session(p, "cpu", threads=threads) for p in (float_path, int8_path)]
    name = sessions[0].get_inputs()[0].name
    rates: list[list[float]] = [[], []]
    for _ in range(rounds):
        for session, found in zip(sessions, rates, strict=True):
            found.append(len(batch) * _calls_per_second(
                lambda s=session: s.run(None, {name: batch}), seconds=0.5))
    ratio = statistics.median(q / f for f, q in zip(*rates, strict=True))
    return statistics.median(rates[0]), statistics.median(rates[1]), ratio


def _int8_rows(name, folder, data, photos, epochs, rounds):
    from imgcls.checkpoint import load_checkpoint
    from imgcls.export import export_onnx
    from imgcls.export.int8 import CALIB_IMAGES, MIN_HELD_OUT

    checkpoint, weights = _int8_checkpoint(name, folder, data, epochs)
    float_path = export_onnx(checkpoint, folder / f"{name}.float.onnx").path
    calib = max(1, min(CALIB_IMAGES, len(photos) - MIN_HELD_OUT))
    result = export_onnx(checkpoint, folder / f"{name}.int8.onnx", int8=True, calibrate=data,
                         calib_images=calib, min_agreement=0.0)  # measured here, not gated
    q = result.quantization
    preprocess = load_checkpoint(checkpoint).preprocess
    batch = preprocess.apply(_first_batch(photos, preprocess))
    f_all, q_all, r_all = int8_rates(float_path, result.path, batch, rounds, None)
    f_one, q_one, r_one = int8_rates(float_path, result.path, batch, rounds, 1)
    f_size, q_size = float_path.stat().st_size, result.path.stat().st_size
    print(f"\n{name} int8 vs float ({weights}), batch 64 pre-decoded, median of {rounds} "
          f"rounds:\n  default threads: float {f_all:7.0f} img/s | int8 {q_all:7.0f} img/s | "
          f"int8 / float {r_all:.2f}x (median ratio over rounds)\n  1 thread:        "
          f"float {f_one:7.0f} img/s | int8 {q_one:7.0f} img/s | int8 / float {r_one:.2f}x\n"
          f"  size: float {f_size / 1e6:.2f} MB | int8 {q_size / 1e6:.2f} MB | "
          f"{f_size / q_size:.1f}x smaller\n  top-1 agreement {q.top1_agreement:.1%} on "
          f"{q.images} held-out photos (calibrated on {q.calibration_images}) (int8 gate)")


if __name__ == "__main__":
    raise SystemExit(main())
