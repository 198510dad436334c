"""Train named recipes on a data set and print validation accuracy and wall time.

    python benchmarks/train_recipes.py --data ../shared/data/cats-dogs tutorial deep-recommended
    python benchmarks/train_recipes.py --data DATA --device cuda deep-seed-30 deep-light-60 ...

``tutorial`` is the Keras cats-vs-dogs tutorial's settings (basic-cnn, Adam at
its default 1e-3, batch 32, 25 epochs, flip/shear/zoom). ``deep-recommended``
is the deep-cnn recipe docs/training.md recommends; the ``deep-*`` variants are
the sweep it was chosen from. ``resnet-s-96`` is the best from-scratch recipe
found for cats-dogs; ``vgg-bn-96`` trains vgg-bn the same way;
``resnet-s-128-ema`` is it at 128 px for 200 epochs with bf16 autocast and an
EMA of the weights; ``resnet-s-128-cutmix`` adds CutMix on half the batches and
runs 250 epochs, the recipe for the held-out figure in docs/training.md:

    python benchmarks/train_recipes.py --data ../shared/data/cats-dogs --holdout resnet-s-128-cutmix
    python benchmarks/train_recipes.py --data ... --holdout --swap-halves resnet-s-128-cutmix

``--holdout`` keeps a test split that no choice is made on: half of each
class of val/ (every other file, sorted) selects the best epoch, the other half
is only evaluated, with and without ``--tta flip``; ``--swap-halves`` exchanges
the two, so two runs hold out every photo of val/ once. The split is a folder
of symbolic links, so no photo is copied.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware import print_header  # benchmarks/hardware.py

from imgcls.evaluate import evaluate_file
from imgcls.train import TrainConfig, fit

TUTORIAL = dict(model="basic-cnn", optimizer="adam", lr=1e-3, weight_decay=0.0,
                scheduler="none", warmup_epochs=0.0, batch_size=32, epochs=25, augment="seed")
DEEP = dict(model="deep-cnn", optimizer="adamw", lr=2e-3, weight_decay=0.05, scheduler="cosine",
            warmup_epochs=2.0, batch_size=64)
SMALL_96 = dict(img_size=96, optimizer="sgd", lr=0.1, weight_decay=5e-4, scheduler="onecycle",
                label_smoothing=0.1, augment="flip,random-resized-crop=0.35,color-jitter=0.3",
                batch_size=64, epochs=150)
RESNET_128_EMA = SMALL_96 | dict(model="resnet-s", model_options={"depth": 20}, img_size=128,
                                 amp=True, ema=True, epochs=200)
RECIPES: dict[str, dict[str, Any]] = {
    "tutorial": TUTORIAL,
    "basic-default": dict(model="basic-cnn"),
    "deep-seed-30": DEEP | dict(epochs=30, augment="seed"),
    "deep-seed-60-ema": DEEP | dict(epochs=60, augment="seed", label_smoothing=0.1, ema=True),
    "deep-light-60": DEEP | dict(epochs=60, augment="light", label_smoothing=0.1, ema=True),
    "deep-strong-60": DEEP | dict(epochs=60, augment="strong", label_smoothing=0.1, ema=True),
    "deep-recommended": DEEP | dict(epochs=60, augment="light", label_smoothing=0.1, ema=True),
    # From scratch at 96 px: SGD + one-cycle + label smoothing + crop/colour augmentation.
    "resnet-s-96": SMALL_96 | dict(model="resnet-s", model_options={"depth": 20}),
    "vgg-bn-96": SMALL_96 | dict(model="vgg-bn", epochs=100),
    # resnet-s-96 at 112 px with bf16 autocast (fast on CPUs with AVX512-BF16 or AMX).
    "resnet-s-112-amp": SMALL_96 | dict(model="resnet-s", model_options={"depth": 20},
                                        img_size=112, amp=True),
    # resnet-s-112-amp at 128 px for 200 epochs with an EMA of the weights (17 minutes).
    "resnet-s-128-ema": RESNET_128_EMA,
    # It for 250 epochs with cutmix on half the batches: the recipe docs/training.md
    # gives for the held-out figure (21 minutes on 2 cores).
    "resnet-s-128-cutmix": RESNET_128_EMA | dict(
        epochs=250, augment=SMALL_96["augment"] + ",cutmix:p=0.5"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def holdout_split(data: Path, root: Path, swap: bool = False) -> tuple[Path, Path]:
    """root/{train,val,test}: train/ as it is, val/ halved into val/ and test/ (links);
    ``swap`` exchanges the halves, so two runs hold out every val/ photo once."""
    root.mkdir(parents=True)
    (root / "train").symlink_to((data / "train").resolve(), target_is_directory=True)
    for folder in sorted(p for p in (data / "val").iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        halves = (files[1::2], files[0::2]) if swap else (files[0::2], files[1::2])
        for split, chosen in zip(("val", "test"), halves, strict=True):
            target = root / split / folder.name
            target.mkdir(parents=True)
            for path in chosen:
                (target / path.name).symlink_to(path.resolve())
    return root, root / "test"


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run(name: str, data: str, device: str, out: str, test: Path | None = None
        ) -> dict[str, Any]:
    config = TrainConfig(**RECIPES[name], data=data, device=device, out=out, name=name,
                         report=False)
    started, cpu = time.perf_counter(), cpu_seconds()
    result = fit(config)
    row = {"recipe": name, "best": result.best["val_acc"], "best epoch": result.best["epoch"],
           "final": result.history[-1]["val_acc"], "wall s": time.perf_counter() - started,
           "cpu s": cpu_seconds() - cpu}
    if test is not None:
        for tta in ("none", "flip"):
            evaluation, _ = evaluate_file(result.best_path, str(test), device=device, tta=tta)
            row[f"test {tta}"] = evaluation.summary()["accuracy"]
    return row


def describe(row: dict[str, Any]) -> str:
    text = (f"{row['recipe']:<18} best val acc {row['best']:.2%} (epoch {row['best epoch']}), "
            f"final {row['final']:.2%}, {row['wall s']:.0f} s wall, {row['cpu s']:.0f} CPU-s")
    if "test none" in row:
        text += (f"; held-out test {row['test none']:.2%}, with --tta flip "
                 f"{row['test flip']:.2%}")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--data", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--holdout", action="store_true",
                        help="Select on half of val/, report on the other half (test).")
    parser.add_argument("--swap-halves", action="store_true",
                        help="With --holdout: select on the half that is otherwise held out.")
    args = parser.parse_args()
    print_header()
    with tempfile.TemporaryDirectory(prefix="imgcls-recipes-") as out:
        data, test = args.data, None
        if args.holdout:
            root, test = holdout_split(Path(args.data), Path(out) / "holdout", args.swap_halves)
            data = str(root)
        for name in args.recipes:
            print(describe(run(name, data, args.device, out, test)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
