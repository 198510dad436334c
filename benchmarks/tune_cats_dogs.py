"""The tutorial's basic-cnn on cats-dogs: imgcls train's default recipe vs the best of a tune.

    python benchmarks/tune_cats_dogs.py                      # 8 trials x 5 epochs
    python benchmarks/tune_cats_dogs.py --trials 20 --epochs 8 --timeout 2h

Both sides train basic-cnn at the same input size for the same epochs per run; the
default recipe is ``imgcls train --model basic-cnn`` as the tutorial runs it (AdamW
2e-3, cosine, ``seed`` augmentation), the tune searches basic-cnn's default space
(``imgcls tune --print-space``) with the median pruner. Printed: each side's best
validation accuracy and the CPU minutes it spent (this process and its children,
from getrusage, so a busy shared machine does not inflate them as it does wall time).

The tune's value is the best of its trials on the validation set that also chose it,
so it is optimistic; ``--rerun`` (default on) trains the best trial's config again with
another seed and prints that accuracy too. Without the data the script says so and
exits 0.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cats-dogs"


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measured(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """``work()``, its CPU seconds and its wall seconds."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = work()
    return result, cpu_seconds() - cpu, time.perf_counter() - wall


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--trials", type=int, default=8, help="finished trials of the tune")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run, both sides")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--timeout", default=None, help="start no trial after this, e.g. 2h")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rerun", action=argparse.BooleanOptionalAction, default=True,
                        help="retrain the best trial's config with seed + 1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not Path(args.data).is_dir():
        print(f"skipped: no data at {args.data} (pass --data DIR)")
        return 0
    print_header()
    import optuna

    from imgcls.train import TrainConfig, fit
    from imgcls.tune import TuneConfig, parse_duration, tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="imgcls-tune-bench-") as out:
        base = TrainConfig(model="basic-cnn", data=args.data, epochs=args.epochs,
                           img_size=args.img_size, seed=args.seed, device=args.device,
                           out=out, report=False)
        print(f"basic-cnn on {args.data}, {args.img_size} px, {args.epochs} epochs per run",
              flush=True)
        default, cpu_default, wall_default = measured(lambda: fit(replace(base, name="default")))
        print(f"default recipe: best val acc {default.best['val_acc']:.2%} (epoch "
              f"{int(default.best['epoch'])}), {cpu_default / 60:.1f} CPU min, "
              f"{wall_default / 60:.1f} wall min", flush=True)
        settings = TuneConfig(base=base, trials=args.trials, seed=args.seed,
                              timeout=parse_duration(args.timeout), study="bench")
        tuned, cpu_tune, wall_tune = measured(lambda: tune(settings, on_trial=_say_trial))
        print(f"tune, {sum(tuned.counts.values())} trials ({_counts(tuned.counts)}): best val "
              f"acc {tuned.best_value:.2%} (trial {tuned.best_number}), "
              f"{cpu_tune / 60:.1f} CPU min, {wall_tune / 60:.1f} wall min", flush=True)
        print(f"  best params: {_params(tuned.best_params)}")
        if args.rerun:
            _rerun(tuned.best_toml, args.seed + 1, out)
        print(f"tuned - default: {100 * (tuned.best_value - default.best['val_acc']):+.1f} "
              f"points for {cpu_tune / max(cpu_default, 1e-9):.1f}x the CPU time")
    return 0


def _rerun(best_toml: Path, seed: int, out: str) -> None:
    from imgcls.train import TrainConfig, fit
    from imgcls.train.config import read_config_file

    config = replace(TrainConfig(**read_config_file(best_toml)), seed=seed, out=out,
                     name="rerun", report=False)
    result, cpu, _ = measured(lambda: fit(config))
    print(f"  best config retrained with seed {seed}: best val acc "
          f"{result.best['val_acc']:.2%}, {cpu / 60:.1f} CPU min", flush=True)


def _say_trial(trial: Any) -> None:
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    print(f"  trial {trial.number}: {trial.state}, val acc {value} after {trial.epochs} "
          f"epochs  {_params(trial.params)}", flush=True)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


if __name__ == "__main__":
    sys.exit(main())
