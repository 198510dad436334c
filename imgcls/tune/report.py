"""The end of a tune: best trials, best.toml, the best checkpoint, and tune-report.html.

best.toml is written by ``TrainConfig.to_toml`` (the writer of every run's config.toml),
so ``imgcls train --config best.toml`` trains the best trial again, exactly.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from markupsafe import Markup, escape
from optuna.trial import FrozenTrial, TrialState

from ..io import atomic_write_bytes, atomic_write_text
from ..report import data_uri, new_figure, png_bytes, render_page
from ..train.config import config_from_dict
from .config import TuneConfig

TOP_TRIALS = 10
# PED-ANOVA (the importance evaluator) compares the best 10% of trials with the rest; its
# authors advise at least 5 trials in that best 10%. Fewer complete trials get a caveat.
IMPORTANCE_TRIALS = 50
STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
               TrialState.FAIL: "failed", TrialState.RUNNING: "running",
               TrialState.WAITING: "waiting"}


@dataclass
class TuneResult:
    """Where the study and its outputs are, and its best trials (best first)."""

    study_name: str
    storage: str
    tune_dir: Path
    metric: str
    counts: dict[str, int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_toml: Path | None = None
    best_checkpoint: Path | None = None
    report_path: Path | None = None


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    """number, state, value, epochs, seconds and params of one trial."""
    steps = trial.intermediate_values
    value = trial.value if trial.value is not None else (steps[max(steps)] if steps else None)
    seconds = (trial.duration.total_seconds() if trial.duration is not None else None)
    return {"number": trial.number, "state": STATE_NAMES.get(trial.state, str(trial.state)),
            "value": value, "epochs": len(steps), "seconds": seconds,
            "params": dict(trial.params)}


def best_rows(study: optuna.Study, limit: int = TOP_TRIALS) -> list[dict[str, Any]]:
    """Complete trials, best value first (ties: the earlier trial)."""
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    done = sorted(done, key=lambda t: (sign * t.value, t.number))
    return [trial_row(t) for t in done[:limit]]


def finish(study: optuna.Study, config: TuneConfig) -> TuneResult:
    """Write best.toml, best.safetensors and tune-report.html into runs/tune-NAME/."""
    trials = study.get_trials(deepcopy=False)
    counts = {name: sum(t.state == state for t in trials) for state, name in STATE_NAMES.items()}
    result = TuneResult(config.study_name, config.storage_url, config.tune_dir, config.metric,
                        {k: v for k, v in counts.items() if v}, best_rows(study))
    config.tune_dir.mkdir(parents=True, exist_ok=True)
    if result.rows:
        best = study.best_trial
        result.best_number, result.best_value = best.number, best.value
        result.best_params = dict(best.params)
        result.best_toml = write_best_toml(best, config.tune_dir / "best.toml")
        result.best_checkpoint = copy_checkpoint(best, config.tune_dir / "best.safetensors")
    if trials:
        result.report_path = write_tune_report(study, result, config.tune_dir / "tune-report.html")
    return result


def write_best_toml(trial: FrozenTrial, path: Path) -> Path:
    config = config_from_dict(trial.user_attrs["train_config"], f"trial {trial.number}")
    return atomic_write_text(path, config.to_toml())


def copy_checkpoint(trial: FrozenTrial, path: Path) -> Path | None:
    """A copy (not a link: it outlives the trial folder); None when the trial ran elsewhere."""
    source = Path(trial.user_attrs.get("best_path", ""))
    if not source.is_file():
        return None
    atomic_write_bytes(path, source.read_bytes())
    return path


# --------------------------------------------------------------------------- plots


def plot_history(study: optuna.Study, metric: str) -> bytes:
    return png_bytes(history_figure(study, metric))


def history_figure(study: optuna.Study, metric: str) -> Any:
    """Each trial's value (pruned ones at their last epoch) and the best so far."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(8, 4)
    axes = figure.subplots()
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best, xs, ys = None, [], []
    for state, marker in ((TrialState.COMPLETE, "o"), (TrialState.PRUNED, "x")):
        rows = [trial_row(t) for t in study.get_trials(deepcopy=False, states=(state,))]
        rows = [r for r in rows if r["value"] is not None and math.isfinite(r["value"])]
        if rows:  # no "pruned" in the legend when none was
            axes.scatter([r["number"] for r in rows], [r["value"] for r in rows],
                         marker=marker, label=STATE_NAMES[state])
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if best is None or (trial.value > best if maximize else trial.value < best):
            best = trial.value
        xs.append(trial.number)
        ys.append(best)
    if xs:  # the best-so-far line runs on to the last trial, pruned ones included
        xs.append(max(t.number for t in study.get_trials(deepcopy=False)))
        ys.append(best)
    axes.step(xs, ys, where="post", color="black", label="best so far")
    axes.set(title="Optimisation history", xlabel="trial", ylabel=metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no trial 0.5
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def param_importances(study: optuna.Study) -> tuple[dict[str, float], str | None]:
    """Importances, or {} and the reason they cannot be computed yet."""
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    except AttributeError:  # optuna < 3.6: the default (fANOVA) needs scikit-learn
        evaluator = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ImportError) as exc:
        return {}, str(exc) or type(exc).__name__
    # e.g. too few trials to tell the good ones from the rest: all would look equal.
    problems = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return ({}, problems[0]) if problems else (dict(importances), None)


def plot_importances(importances: dict[str, float]) -> bytes:
    figure = new_figure(8, 0.8 + 0.4 * len(importances))
    axes = figure.subplots()
    names = list(importances)[::-1]  # most important at the top
    axes.barh(names, [importances[n] for n in names])
    axes.set(title="Parameter importances", xlabel="importance")
    axes.grid(alpha=0.3, axis="x")
    return png_bytes(figure)


# --------------------------------------------------------------------------- HTML


def format_value(value: Any) -> str:
    """Numbers to 4 significant digits; everything else as text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def breakable(name: str) -> Markup:
    """A column name that may wrap after "_" and "." (``weight_<wbr>decay``), so that a
    dozen parameter columns fit the page's width."""
    return Markup(re.sub(r"([_.])", r"\1<wbr>", str(escape(name))))


def importance_caveat(complete: int) -> str | None:
    """What to make of importances from fewer than IMPORTANCE_TRIALS complete trials."""
    if complete >= IMPORTANCE_TRIALS:
        return None
    return (f"From {complete} complete trial{'s' if complete != 1 else ''} only: a rough "
            "guess. The importances compare the best 10% of trials with the rest, and "
            f"mean something from about {IMPORTANCE_TRIALS} trials on (5 in the best 10%).")


def render_tune_report(study: optuna.Study, result: TuneResult) -> str:
    """The whole report as one HTML string; the plots are embedded PNGs."""
    importances, why = param_importances(study)
    names = sorted({name for row in result.rows for name in row["params"]})
    rows = [[r["number"], format_value(r["value"]), r["epochs"], format_value(r["seconds"]),
             *(format_value(r["params"].get(n)) for n in names)] for r in result.rows]
    header = ["trial", result.metric, "epochs", "seconds", *names]
    return render_page(
        "tune-report.html.j2", title=f"imgcls tune {result.study_name}",
        counts=", ".join(f"{n} {state}" for state, n in result.counts.items()),
        metric=result.metric, header=[breakable(name) for name in header],
        rows=rows, history=data_uri(plot_history(study, result.metric), "image/png"),
        importances=importances and data_uri(plot_importances(importances), "image/png"),
        caveat=importance_caveat(result.counts.get("complete", 0)),
        why=why or "no trials")


def write_tune_report(study: optuna.Study, result: TuneResult, path: Path) -> Path:
    return atomic_write_text(path, render_tune_report(study, result))
