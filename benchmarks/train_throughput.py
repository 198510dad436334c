"""Training throughput: the full ``fit`` pipeline against the model's compute alone.

    python benchmarks/train_throughput.py                      # cats-dogs (if present) and shapes
    python benchmarks/train_throughput.py --models basic-cnn --epochs 5 --data DATA

For each model, in one run and side by side:

* compute-only: forward + backward + optimiser step on pre-made float batches
  (same model, optimiser, batch size, memory format and threads as ``fit``), a
  distinct batch per step, one round before the ``fit`` run and one after each of its
  epochs, so that every epoch is compared with the rounds either side of it: a
  shared machine's speed drifts over seconds, which a comparison of a block of
  rounds with a block of epochs would count as pipeline overhead;
* ``fit``: the tutorial recipe (Adam 1e-3, batch 32, flip/shear/zoom) on real
  photos and on the generated ``shapes`` set, images/s per epoch as the loop
  reports it, and where its time went (the loop's own stage timers);
* the ratios: fit / compute-only, fit / the Keras tutorial pipeline (383
  images/s measured on the same 2,000 photos and 2 cores), and the spread
  between epochs, the first one included.

Both sides run with the allocator setting ``fit`` makes
(:func:`imgcls.system.reuse_freed_memory`).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from hardware import print_header  # benchmarks/hardware.py

from imgcls.registry import get_model
from imgcls.system import reuse_freed_memory
from imgcls.train import TrainConfig, feed, fit
from imgcls.train.optim import build_optimizer
from imgcls.train.progress import Reporter

KERAS_IMAGES_PER_SECOND = 383.0  # the tutorial's ImageDataGenerator pipeline, same photos
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats-dogs"
STAGES = ("data", "augment", "normalise", "step", "bookkeeping")
TUTORIAL = dict(optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none",
                warmup_epochs=0.0, augment="seed")


class EpochLog(Reporter):
    """Keeps what the loop reports at the end of every epoch, then runs ``between``."""

    def __init__(self, between: Callable[[], None] = lambda: None) -> None:
        self.records: list[dict[str, float]] = []
        self.between = between

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        self.records.append(record)
        self.between()


class ComputeOnly:
    """Forward + backward + optimiser step (fit's optimiser) on pre-made batches, a
    distinct batch per step as each step of ``fit`` has; :meth:`round` gives images/s."""

    def __init__(self, model_name: str, size: int, batch: int, steps: int) -> None:
        torch.manual_seed(0)
        model = get_model(model_name).spec.build(2, image_size=(size, size))
        self.batches = [(torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,)))
                        for _ in range(steps)]
        if feed.wants_channels_last(model):  # as fit places it
            model = model.to(memory_format=torch.channels_last)
        self.model = model.train()
        self.optimizer = build_optimizer(model, TrainConfig(model=model_name, **TUTORIAL))
        for inputs, labels in self.batches[:5]:
            self.step(inputs, labels)

    def step(self, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(inputs), labels).backward()
        self.optimizer.step()

    def round(self) -> float:
        started = time.perf_counter()
        for inputs, labels in self.batches:
            self.step(inputs, labels)
        return sum(len(labels) for _, labels in self.batches) / (time.perf_counter() - started)


def side_by_side(model_name: str, data: str, size: int, batch: int, epochs: int, steps: int,
                 out: str) -> tuple[list[float], list[dict[str, float]]]:
    """A compute-only round, then after each epoch of ``fit`` another one."""
    compute = ComputeOnly(model_name, size, batch, steps)
    rounds = [compute.round()]
    log = EpochLog(between=lambda: rounds.append(compute.round()))
    config = TrainConfig(model=model_name, data=data, img_size=size, batch_size=batch,
                         epochs=epochs, out=out, name=f"{model_name}-{Path(data).name}",
                         report=False, **TUTORIAL)
    fit(config, log)
    return rounds, log.records


def summarise(model_name: str, source: str, batch_size: int, rounds: list[float],
              records: list[dict[str, float]]) -> None:
    rates = [r["images_per_second"] for r in records]
    rate = statistics.median(rates)
    # Each epoch against the mean of the compute-only rounds just before and after it.
    around = [(before + after) / 2 for before, after in itertools.pairwise(rounds)]
    ratios = [r / compute for r, compute in zip(rates, around, strict=True)]
    spread = (max(rates) - min(rates)) / rate
    print(f"\n{model_name} on {source}")
    print("  fit images/s per epoch: " + ", ".join(f"{r:.0f}" for r in rates))
    print("  compute-only images/s, a round before each epoch and after the last: "
          + ", ".join(f"{r:.0f}" for r in rounds))
    print(f"  fit (median of all epochs): {rate:.0f} images/s; compute-only (median of "
          f"{len(rounds)} rounds): {statistics.median(rounds):.0f}")
    print("  fit / compute-only: " + f"{statistics.median(ratios):.2f} (median of the epochs' "
          "ratios to the rounds either side: " + ", ".join(f"{q:.2f}" for q in ratios) + ")")
    print(f"  fit / Keras tutorial pipeline ({KERAS_IMAGES_PER_SECOND:.0f} images/s): "
          f"{rate / KERAS_IMAGES_PER_SECOND:.2f}x")
    print(f"  epoch-to-epoch spread (max-min)/median, every epoch: {spread:.1%}")
    if all(f"{stage}_seconds" in records[0] for stage in STAGES):
        totals = {stage: sum(r[f"{stage}_seconds"] for r in records) for stage in STAGES}
        wall = sum(r["epoch_seconds"] for r in records)
        split = ", ".join(f"{stage} {seconds / wall:.1%}" for stage, seconds in totals.items())
        print(f"  time split (all epochs): {split}; other {1 - sum(totals.values()) / wall:.1%}")
        batches = sum(math.ceil(r["images_per_second"] * r["epoch_seconds"] / batch_size)
                      for r in records)
        print("  per batch: " + ", ".join(f"{stage} {totals[stage] / batches * 1e3:.2f} ms"
                                          for stage in ("augment", "normalise", "step")))


def run_model(model_name: str, sources: list[tuple[str, str]], args: Any, out: str) -> None:
    size = args.img_size or get_model(model_name).spec.input_size[0]
    for label, data in sources:
        rounds, records = side_by_side(model_name, data, size, args.batch_size, args.epochs,
                                       args.steps, out)
        summarise(model_name, f"{label} at {size}px, batch {args.batch_size}", args.batch_size,
                  rounds, records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="A folder of photos with train/ and val/ (skipped if absent).")
    parser.add_argument("--models", nargs="+", default=["basic-cnn", "resnet-s", "vgg-bn"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=None, help="Default: the model's.")
    parser.add_argument("--steps", type=int, default=63,
                        help="Compute-only steps per round (63: a cats-dogs epoch at batch 32).")
    parser.add_argument("--no-shapes", action="store_true")
    parser.add_argument("--augment-pixels", type=int, default=None,
                        help="Pixels the loop augments per call (default: fit's); "
                             "to compare chunk sizes.")
    args = parser.parse_args(argv)
    print_header()
    if args.augment_pixels is not None:
        feed.AUGMENT_PIXELS = args.augment_pixels
    reuse_freed_memory()
    sources = [("photos " + Path(args.data).name, args.data)] if Path(args.data).is_dir() else []
    if not sources:
        print(f"{args.data} not found: real photos skipped.")
    if not args.no_shapes:
        sources.append(("shapes (generated)", "shapes"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.epochs} epochs per fit, pixels augmented per call: "
          f"{getattr(feed, 'AUGMENT_PIXELS', 'one batch')}")  # older checkouts: one batch
    with tempfile.TemporaryDirectory(prefix="imgcls-throughput-") as out:
        for model_name in args.models:
            run_model(model_name, sources, args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
