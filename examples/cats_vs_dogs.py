"""The cats-vs-dogs tutorial (docs/tutorial.md) in one script, on any folder data set.

    python examples/cats_vs_dogs.py path/to/cats-dogs --photos path/to/photos

Each step is the `imgcls` command the tutorial shows, printed and then run through
the same entry point as the `imgcls` program (in this process, so torch is
imported once). It stops at the first command that fails. The run folders go to
--out-dir (default runs/), named example-*, so they never land on the Quickstart's or the
tutorial's runs; when the script runs again it reuses them (imgcls says so).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from imgcls.cli import main as imgcls


def run(*args: str) -> None:
    print(f"\n$ imgcls {shlex.join(args)}", flush=True)
    code = imgcls(list(args))
    if code:
        sys.exit(code)


def best_accuracy(run_dir: Path) -> str:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best = max(records, key=lambda record: record["val_acc"])
    return f"{best['val_acc']:.1%} (epoch {best['epoch']})"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the cats-vs-dogs tutorial's commands.")
    parser.add_argument("data", help="a folder with one sub-folder per class (train/ and val/ "
                                     "splits optional)")
    parser.add_argument("--epochs", default="25", help="epochs of the basic-cnn runs")
    parser.add_argument("--deep-epochs", default="60", help="epochs of the deep-cnn run")
    parser.add_argument("--photos", help="images to classify at the end (default: DATA)")
    parser.add_argument("--out-dir", default="runs", help="folder that holds the run folders")
    args = parser.parse_args()
    runs = Path(args.out_dir)
    common = ["--data", args.data, "--out-dir", args.out_dir, "--exist-ok"]

    run("data", "check", "--data", args.data)
    # The Keras tutorial's network and augmentation (flip, shear 0.2, zoom 0.2).
    run("train", "--model", "basic-cnn", *common, "--epochs", args.epochs,
        "--name", "example-basic")
    # The same without augmentation: training accuracy runs away from validation accuracy.
    run("train", "--model", "basic-cnn", *common, "--epochs", args.epochs, "--augment", "none",
        "--name", "example-noaug")
    # The deeper 128px network with the deep-recommended recipe of docs/training.md (its
    # 2 warm-up epochs, at most half of a short run).
    warmup = f"{min(2.0, float(args.deep_epochs) / 2):g}"
    run("train", "--model", "deep-cnn", *common, "--epochs", args.deep_epochs,
        "--warmup-epochs", warmup, "--augment", "light", "--label-smoothing", "0.1", "--ema",
        "--name", "example-deep")

    print("\nbest validation accuracy:")
    for name in ("example-basic", "example-noaug", "example-deep"):
        print(f"  {name:16} {best_accuracy(runs / name)}")

    checkpoint = str(runs / "example-deep" / "best.safetensors")
    model = str(runs / "catsdogs.onnx")
    run("eval", checkpoint, "--data", args.data)
    run("export", "onnx", checkpoint, "-o", model)
    run("infer", model, args.photos or args.data, "-o", str(runs / "preds.csv"), "--top-k", "2")
    print(f"\nreports: {runs}/*/report.html; predictions: {runs / 'preds.csv'}")


if __name__ == "__main__":
    main()
