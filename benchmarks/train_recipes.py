"""Train named recipes on a data set and print validation accuracy and wall time.

    python benchmarks/train_recipes.py --data ../shared/data/cats-dogs tutorial deep-recommended
    python benchmarks/train_recipes.py --data DATA --device cuda deep-seed-30 deep-light-60 ...

``tutorial`` is the Keras cats-vs-dogs tutorial's settings (basic-cnn, Adam at
its default 1e-3, batch 32, 25 epochs, flip/shear/zoom). ``deep-recommended``
is the deep-cnn recipe docs/training.md recommends; the ``deep-*`` variants are
the sweep it was chosen from. ``resnet-s-96`` is the best from-scratch recipe
found for cats-dogs; ``vgg-bn-96`` trains vgg-bn the same way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgcls.train import TrainConfig, fit

TUTORIAL = dict(model="basic-cnn", optimizer="adam", lr=1e-3, weight_decay=0.0,
                scheduler="none", warmup_epochs=0.0, batch_size=32, epochs=25, augment="seed")
DEEP = dict(model="deep-cnn", optimizer="adamw", lr=2e-3, weight_decay=0.05, scheduler="cosine",
            warmup_epochs=2.0, batch_size=64)
SMALL_96 = dict(img_size=96, optimizer="sgd", lr=0.1, weight_decay=5e-4, scheduler="onecycle",
                label_smoothing=0.1, augment="flip,random-resized-crop=0.35,color-jitter=0.3",
                batch_size=64, epochs=150)
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
}


def run(name: str, data: str, device: str, out: str) -> dict[str, Any]:
    config = TrainConfig(**RECIPES[name], data=data, device=device, out=out, name=name,
                         report=False)
    started = time.perf_counter()
    result = fit(config)
    return {"recipe": name, "best": result.best["val_acc"], "best epoch": result.best["epoch"],
            "final": result.history[-1]["val_acc"], "wall s": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--data", required=True)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="imgcls-recipes-") as out:
        for name in args.recipes:
            rows.append(run(name, args.data, args.device, out))
            row = rows[-1]
            print(f"{row['recipe']:<18} best val acc {row['best']:.2%} (epoch "
                  f"{row['best epoch']}), final {row['final']:.2%}, {row['wall s']:.0f} s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
