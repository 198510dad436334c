"""Thread policy: CPU-ms per image and images/s of training steps, quiet and under load.

    python benchmarks/thread_policy.py                    # resnet-s at 96 px, 20 s a cell
    python benchmarks/thread_policy.py --seconds 10 --data ../shared/data/cats-dogs

Each cell is a fresh process (OpenMP reads its wait policy once, at start) running
forward + backward + optimiser steps of ``fit``'s model and optimiser on pre-made
batches for a fixed time, with 1 or 2 intra-op threads and OpenMP's default or
PASSIVE wait policy. "loaded" runs the same cells while a second training process
(2 threads, default policy: what a user's other job looks like) competes for the
cores. CPU-ms per image is the process's own CPU time over the images it trained:
time spent spinning while a thread waits for the other counts.

With ``--data``, a last table trains one real epoch with ``--cache none`` (decode and
augment per step) for 0, 1 and 2 data workers, quiet, on 1 thread, and counts the
workers' CPU too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware import print_header  # benchmarks/hardware.py

HERE = Path(__file__).resolve()
POLICIES = ("default", "PASSIVE")


def child_steps(model: str, size: int, batch: int, threads: int, seconds: float,
                progress: str | None = None) -> dict:
    """Train on pre-made batches for ``seconds``; images, wall and own CPU seconds.
    ``progress``: a file that holds the images trained so far (the competitor's)."""
    import torch
    from train_throughput import ComputeOnly  # fit's model, optimiser and memory format

    torch.set_num_threads(threads)
    compute = ComputeOnly(model, size, batch, steps=4)  # it warms up on its batches
    images, started, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        compute.step(*compute.batches[(images // batch) % len(compute.batches)])
        images += batch
        if progress:
            Path(progress).write_text(str(images))
    return {"images": images, "wall": time.perf_counter() - started,
            "cpu": time.process_time() - cpu0}


def child_epoch(data: str, size: int, workers: int) -> dict:
    """One real epoch of ``fit`` with per-step decoding; CPU of this process and workers."""
    from imgcls.train import Reporter, TrainConfig, fit

    class LastEpoch(Reporter):  # the epoch line's record carries its timing
        def epoch_end(self, record: dict, is_best: bool) -> None:
            self.record = record

    def cpu_seconds() -> float:
        return sum(r.ru_utime + r.ru_stime for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN)))  # workers, once reaped

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model="resnet-s", data=data, img_size=size, epochs=1, threads=1,
                             cache="none", workers=workers, out=out, report=False,
                             augment="flip,random-resized-crop=0.35")
        cpu0 = cpu_seconds()
        last = LastEpoch()
        fit(config, last)
        cpu = cpu_seconds() - cpu0  # includes the validation pass and the data scan
    record = last.record
    images = record["images_per_second"] * record["epoch_seconds"]
    return {"images": images, "wall": record["epoch_seconds"], "cpu": cpu}


def spawn(args: list[str], policy: str = "default") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                             "OMP_WAIT_POLICY")}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return subprocess.Popen([sys.executable, str(HERE), "--child", *args], env=env,
                            stdout=subprocess.PIPE, text=True,
                            # the competitor is stopped with SIGTERM; a child must not
                            # inherit an ignored SIGINT from a non-interactive shell
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def measure(args: list[str], policy: str = "default") -> dict:
    proc = spawn(args, policy)
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"child {args} failed with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def row(label: str, figures: dict, other: str = "") -> str:
    per_image = 1000 * figures["cpu"] / figures["images"]
    rate = figures["images"] / figures["wall"]
    return f"| {label} | {per_image:.1f} | {rate:.0f} |{other} {os.getloadavg()[0]:.1f} |"


def competitor_images(progress: Path) -> int:
    try:
        return int(progress.read_text() or 0)
    except (OSError, ValueError):
        return 0


def step_table(options: argparse.Namespace) -> None:
    print(f"\ntraining steps: {options.model} at {options.size} px, batch {options.batch}, "
          f"{options.seconds:g} s a cell\n")
    print("| load | threads | wait policy | CPU-ms / image | images / s | the other job's "
          "images / s | load average |")
    print("|---|---|---|---|---|---|---|")
    progress = Path(tempfile.mkdtemp()) / "competitor"
    for load in ("quiet", "loaded"):
        competitor = None
        if load == "loaded":
            competitor = spawn(["steps", options.model, str(options.size),
                                str(options.batch), "2", "100000", str(progress)])
            time.sleep(5)  # let it reach its steady state
        try:
            for threads in (1, 2):
                for policy in POLICIES:
                    done, started = competitor_images(progress), time.perf_counter()
                    figures = measure(["steps", options.model, str(options.size),
                                       str(options.batch), str(threads),
                                       str(options.seconds)], policy)
                    other = (competitor_images(progress) - done) / (time.perf_counter()
                                                                   - started)
                    print(row(f"{load} | {threads} | {policy}", figures,
                              f" {other:.0f} |" if competitor else " - |"), flush=True)
        finally:
            if competitor is not None:
                competitor.terminate()
                competitor.wait()


def worker_table(options: argparse.Namespace) -> None:
    print(f"\none epoch of fit, --cache none, 1 thread, {options.size} px, {options.data}\n")
    print("| workers | CPU-ms / image (with workers) | images / s | load average |")
    print("|---|---|---|---|")
    for workers in (0, 1, 2):
        figures = measure(["epoch", options.data, str(options.size), str(workers)])
        print(row(str(workers), figures), flush=True)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "steps":
            model, size, batch, threads, seconds, *progress = rest
            result = child_steps(model, int(size), int(batch), int(threads), float(seconds),
                                 *progress)
        else:
            data, size, workers = rest
            result = child_epoch(data, int(size), int(workers))
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet-s")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--data", help="a folder of class folders for the workers table")
    parser.add_argument("--workers-only", action="store_true", help="only the workers table")
    options = parser.parse_args()
    print_header()
    if not options.workers_only:
        step_table(options)
    if options.data:
        worker_table(options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
