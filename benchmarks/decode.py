"""Images/s of imgcls.images.load_pixels with JPEG draft decoding on and off.

    python benchmarks/decode.py [--data DIR] [--size 64] [--repeat 5]

Single-threaded, same files for both modes, a warm-up pass first so both read
from the page cache; reports the median of the timed passes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "../shared/data/cats-dogs/val"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="image folder (relative to repo root)")
    parser.add_argument("--size", type=int, default=64, help="square stretch target (pixels)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per mode")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many files")
    args = parser.parse_args(argv)
    print_header()

    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    import numpy as np

    from imgcls.images import is_image_file, load_pixels
    from imgcls.specs import Preprocess

    data = (ROOT / args.data).resolve()
    if not data.is_dir():
        print(f"error: data folder not found: {data}", file=sys.stderr)
        print("hint: pass --data with a folder of images", file=sys.stderr)
        return 2
    files = sorted(p for p in data.rglob("*") if p.is_file() and is_image_file(p))
    files = files[: args.limit] if args.limit else files
    if not files:
        print(f"error: no image files under {data}", file=sys.stderr)
        return 2

    pre = Preprocess(size=(args.size, args.size), resize="stretch")

    def one_pass(draft: bool) -> float:
        start = time.perf_counter()
        for path in files:
            load_pixels(path, pre, draft=draft)
        return time.perf_counter() - start

    one_pass(True)
    one_pass(False)
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeat):  # interleaved so drift hits both modes alike
        for draft in (True, False):
            timings[draft].append(one_pass(draft))

    rates = {d: len(files) / statistics.median(t) for d, t in timings.items()}
    diff = np.mean(
        [
            np.abs(load_pixels(p, pre).astype(np.int16) - load_pixels(p, pre, draft=False)).mean()
            for p in files
        ]
    )
    print(f"files: {len(files)} from {data}")
    print(f"target: {args.size}x{args.size} stretch, {args.repeat} passes, median")
    print(f"draft on : {rates[True]:8.1f} images/s")
    print(f"draft off: {rates[False]:8.1f} images/s")
    print(f"speed-up : {rates[True] / rates[False]:8.2f}x")
    print(f"mean |draft - full| pixel difference: {diff:.2f} / 255")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
