"""Training throughput: the full ``fit`` pipeline against the model's compute alone.

    python benchmarks/train_throughput.py                      # cats-dogs (if present) and shapes
    python benchmarks/train_throughput.py --models basic-cnn --epochs 5 --data DATA

For each model, in one run and side by side:

* compute-only: forward + backward + optimiser step on pre-made float batches
  (same model, optimiser, batch size, memory format and threads as ``fit``), a
  distinct batch per step, in as many rounds before and after the ``fit`` run as it
  has epochs; the median round is compared with the median epoch;
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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from imgcls.registry import get_model
from imgcls.system import reuse_freed_memory
from imgcls.train import TrainConfig, fit
from imgcls.train.optim import build_optimizer
from imgcls.train.progress import Reporter

KERAS_IMAGES_PER_SECOND = 383.0  # the tutorial's ImageDataGenerator pipeline, same photos
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats-dogs"
STAGES = ("data", "augment", "normalise", "step", "bookkeeping")
TUTORIAL = dict(optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none",
                warmup_epochs=0.0, augment="seed")


class EpochLog(Reporter):
    """Keeps what the loop reports at the end of every epoch."""

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        self.records.append(record)


def channels_last_like_fit(model: torch.nn.Module) -> bool:
    try:
        from imgcls.train.feed import wants_channels_last
    except ImportError:  # a checkout from before the loop went channels-last
        return False
    return wants_channels_last(model)


def compute_only(model_name: str, size: int, batch: int, steps: int,
                 rounds: int) -> list[float]:
    """Images/s of forward + backward + Adam step (fit's optimiser) per round of ``steps``
    steps, each step on its own pre-made batch, as each step of ``fit`` is."""
    torch.manual_seed(0)
    model = get_model(model_name).spec.build(2, image_size=(size, size))
    batches = [(torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,)))
               for _ in range(steps)]
    if channels_last_like_fit(model):
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = build_optimizer(model, TrainConfig(model=model_name, **TUTORIAL))  # as fit's

    def step(inputs: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    for inputs, labels in batches[:5]:
        step(inputs, labels)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for inputs, labels in batches:
            step(inputs, labels)
        rates.append(steps * batch / (time.perf_counter() - started))
    return rates


def fit_rates(model_name: str, data: str, size: int, batch: int, epochs: int,
              out: str) -> list[dict[str, float]]:
    log = EpochLog()
    config = TrainConfig(model=model_name, data=data, img_size=size, batch_size=batch,
                         epochs=epochs, out=out, name=f"{model_name}-{Path(data).name}",
                         report=False, **TUTORIAL)
    fit(config, log)
    return log.records


def summarise(model_name: str, source: str, computes: list[float],
              records: list[dict[str, float]]) -> None:
    compute = statistics.median(computes)
    rates = [r["images_per_second"] for r in records]
    rate = statistics.median(rates)
    spread = (max(rates) - min(rates)) / rate
    print(f"\n{model_name} on {source}")
    print("  fit images/s per epoch: " + ", ".join(f"{r:.0f}" for r in rates))
    print(f"  fit (median of all epochs): {rate:.0f} images/s; compute-only (median of "
          f"{len(computes)} rounds, {min(computes):.0f}-{max(computes):.0f}): {compute:.0f}")
    print(f"  fit / compute-only: {rate / compute:.2f}")
    print(f"  fit / Keras tutorial pipeline ({KERAS_IMAGES_PER_SECOND:.0f} images/s): "
          f"{rate / KERAS_IMAGES_PER_SECOND:.2f}x")
    print(f"  epoch-to-epoch spread (max-min)/median, every epoch: {spread:.1%}")
    if all(f"{stage}_seconds" in records[0] for stage in STAGES):
        totals = {stage: sum(r[f"{stage}_seconds"] for r in records) for stage in STAGES}
        wall = sum(r["epoch_seconds"] for r in records)
        split = ", ".join(f"{stage} {seconds / wall:.1%}" for stage, seconds in totals.items())
        print(f"  time split (all epochs): {split}; other {1 - sum(totals.values()) / wall:.1%}")


def run_model(model_name: str, sources: list[tuple[str, str]], args: Any, out: str) -> None:
    size = args.img_size or get_model(model_name).spec.input_size[0]
    for label, data in sources:
        # Both sides as alike as can be: as many rounds of compute-only before and after
        # the fit as it has epochs, and the median of each side.
        before = compute_only(model_name, size, args.batch_size, args.steps, args.epochs)
        records = fit_rates(model_name, data, size, args.batch_size, args.epochs, out)
        after = compute_only(model_name, size, args.batch_size, args.steps, args.epochs)
        summarise(model_name, f"{label} at {size}px, batch {args.batch_size}",
                  before + after, records)


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
    args = parser.parse_args(argv)
    reuse_freed_memory()
    sources = [("photos " + Path(args.data).name, args.data)] if Path(args.data).is_dir() else []
    if not sources:
        print(f"{args.data} not found: real photos skipped.")
    if not args.no_shapes:
        sources.append(("shapes (generated)", "shapes"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.epochs} epochs per fit")
    with tempfile.TemporaryDirectory(prefix="imgcls-throughput-") as out:
        for model_name in args.models:
            run_model(model_name, sources, args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
