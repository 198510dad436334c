"""What the Grad-CAM overlays cost report.html: the end-of-run report with and without them.

    python benchmarks/explain_report.py [--data shapes] [--epochs 1] [--rounds 5] [--threads N]

Trains ``--model`` (basic-cnn) on ``--data`` for ``--epochs`` (one epoch leaves plenty of
mistakes, so the gallery is full: the overlays' worst case), then times the end of the
run, ``RunFolder.finish`` (evaluation of the best weights on the validation images, the
plots, the CSVs and report.html), with ``report_cams`` off and on, alternating round by
round so that load from other processes hits both alike. After one warm-up of each it
prints the median seconds of each and the median of the per-round ratios on / off
(1.10 = the overlays add 10% to the report's time). On a machine whose cores other
processes also use, ``--threads 1`` keeps torch's threads from waiting on each other,
which costs the many small operations of the overlays more than the evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="shapes", help="data set (default: shapes)")
    parser.add_argument("--model", default="basic-cnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    return run(args)


def run(args: argparse.Namespace) -> int:
    import torch

    from imgcls.train import fit
    from imgcls.train.run_folder import RunFolder

    finish = RunFolder.finish
    captured: list = []

    def keep(self: RunFolder, *rest: object) -> Path:
        captured.append((self, rest))
        return finish(self, *rest)

    RunFolder.finish = keep  # type: ignore[method-assign]
    if args.threads:
        torch.set_num_threads(args.threads)
    print_header()  # after --threads: the header names them
    with tempfile.TemporaryDirectory() as out:
        fit(model=args.model, data=args.data, epochs=args.epochs, out=out, name="bench")
        folder, rest = captured[0]
        mistakes = len((folder.run_dir / "misclassified.csv").read_text().splitlines()) - 1
        print(f"{args.model} on {args.data}: {len(folder.images[1])} validation images, "
              f"{mistakes} mistakes (the gallery shows up to 24); "
              f"{torch.get_num_threads()} torch threads")
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(args.rounds + 1):
            for cams in (False, True):
                folder.config = replace(folder.config, report_cams=cams)
                start = time.perf_counter()
                finish(folder, *rest)
                if round_:  # round 0 warms up both
                    seconds[cams].append(time.perf_counter() - start)
        overlays = (folder.run_dir / "report.html").read_text().count('class="cam"')
    ratios = [on / off for off, on in zip(seconds[False], seconds[True], strict=True)]
    print(f"report without overlays: {statistics.median(seconds[False]):.3f} s (median of "
          f"{args.rounds})")
    print(f"report with overlays:    {statistics.median(seconds[True]):.3f} s, "
          f"{overlays} overlays")
    print(f"with / without: {statistics.median(ratios):.3f} (median of per-round ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
