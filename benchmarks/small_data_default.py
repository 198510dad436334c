"""What ``imgcls train --data FOLDER`` gives on a small set, against the tutorial defaults.

    python benchmarks/small_data_default.py --data ../shared/data/cats-dogs

With no ``--model``, ``--epochs`` or ``--time``, a folder of at most 10,000 images
trains the 5-minute budget recipe (imgcls/train/recipes.py). This runs, one after the
other, on the same train/ and the same half of val/ to select on:

- ``imgcls train --data FOLDER``: that recipe (threads as the thread policy picks);
- ``--model basic-cnn``: the tutorial network with its 10 default epochs, which was the
  default before;
- ``--model basic-cnn --time 5m``: the tutorial network given the same five minutes;

and prints CPU-seconds, wall time, load average and accuracy on the held-out half of
val/ (the ``train_recipes.py --holdout`` split).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware import print_header  # benchmarks/hardware.py
from peer_ultralytics import train_and_score  # benchmarks/peer_ultralytics.py
from train_recipes import holdout_split  # benchmarks/train_recipes.py

RUNS = {
    "imgcls train (the small-data default)": [],
    "--model basic-cnn (10 epochs, the old default)": ["--model", "basic-cnn"],
    "--model basic-cnn --time 5m": ["--model", "basic-cnn", "--time", "5m"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a folder with train/ and val/")
    parser.add_argument("--swap-halves", action="store_true")
    args = parser.parse_args()
    print_header()
    with tempfile.TemporaryDirectory(prefix="imgcls-small-") as tmp:
        out = Path(tmp)
        root, test = holdout_split(Path(args.data), out / "holdout", args.swap_halves)
        print("| run | CPU-s | wall s | load average | held-out |")
        print("|---|---|---|---|---|")
        for index, (label, extra) in enumerate(RUNS.items()):
            run = train_and_score(root, test, out / "runs", str(index), *extra)
            print(f"| {label} | {run['cpu']:.0f} | {run['wall']:.0f} | "
                  f"{os.getloadavg()[0]:.1f} | {run['test']:.1%} |", flush=True)
            for line in run["printed"].splitlines():
                if line.startswith("recipe for"):
                    print(f"|   {line} | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
