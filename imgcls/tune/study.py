"""The optuna study: storage, sampler, pruner, and one real training run per trial.

Every process that runs the same command with the same storage URL works on the same
study: finished trials (complete or pruned) of all of them count toward ``trials``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from ..errors import ConfigError, ImgclsError, NonFiniteLossError
from ..registry import get_model
from ..specs import ModelSpec
from ..train.loop import fit
from ..train.progress import Reporter
from .config import TuneConfig
from .report import STATE_NAMES
from .space import Param, check_space, default_space, read_space

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Two processes opening a new SQLite file at once may both try to create its tables.
STORAGE_ATTEMPTS = 5
# Seconds a process waits for another one's write lock on a shared SQLite file.
SQLITE_LOCK_TIMEOUT = 60


@dataclass
class TrialSummary:
    """One finished trial as the progress line shows it."""

    number: int
    state: str
    value: float | None
    epochs: int
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialSummary:
        steps = trial.intermediate_values
        value = trial.value if trial.value is not None else (
            steps[max(steps)] if steps else None)
        return cls(trial.number, STATE_NAMES.get(trial.state, trial.state.name.lower()), value,
                   len(steps), dict(trial.params), trial.user_attrs.get("error"))


class PruningReporter(Reporter):
    """Reports each epoch's validation metric to optuna; stops the run when it says prune.

    optuna.TrialPruned raised from ``epoch_end`` leaves fit() like any error (after the
    epoch's checkpoint is saved); optuna records the trial as pruned.
    """

    def __init__(self, trial: Trial, key: str, inner: Reporter | None = None) -> None:
        self.trial, self.key, self.inner = trial, key, inner or Reporter()

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        self.inner.epoch_end(record, is_best)
        epoch = int(record["epoch"])
        self.trial.report(float(record[self.key]), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    def warn(self, message: str) -> None:
        self.inner.warn(message)

    def note(self, message: str) -> None:
        self.inner.note(message)


def load_space(config: TuneConfig, spec: ModelSpec) -> list[Param]:
    """--space, or the model family's default space; checked against TrainConfig."""
    space = read_space(config.space, spec) if config.space else default_space(spec, config.base)
    check_space(space, config.base, spec, config.space or f"the default space of {spec.name}")
    return space


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage for any SQLAlchemy URL; an SQLite file's folder is created."""
    from sqlalchemy.exc import DBAPIError

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_LOCK_TIMEOUT}
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except ImportError as exc:
            raise ConfigError(f"Cannot open --storage {url}: {exc}",
                              "Install the database driver, e.g. pip install psycopg2-binary "
                              "for postgresql://.") from exc
        except DBAPIError as exc:  # e.g. another process creating the same new file's tables
            if attempt + 1 == STORAGE_ATTEMPTS:
                raise ConfigError(f"Cannot open --storage {url}: {exc}",
                                  "Check that the database is reachable and writable.") from exc
            time.sleep(0.2 * (attempt + 1))
        except Exception as exc:  # SQLAlchemy refuses the URL itself
            raise ConfigError(f"Cannot open --storage {url}: {exc}",
                              "Pass an SQLAlchemy URL, e.g. sqlite:///runs/tune.db or "
                              "postgresql://user:pass@host/db.") from exc
    raise AssertionError("unreachable")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """median: stop below the median of earlier trials at the same epoch; halving: ASHA."""
    if name == "median":
        # Five full trials give the median something to stand on; epoch 1 is too noisy
        # (optuna prunes from step n_warmup_steps on; steps are epochs 1, 2, ...).
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def make_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    """TPE; the same seed proposes the same parameters. constant_liar keeps processes that
    share a study from proposing what another one is already training."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def open_study(config: TuneConfig) -> optuna.Study:
    """Create the study, or load it (resume, or join other processes) when it exists."""
    study = optuna.create_study(
        storage=make_storage(config.storage_url), study_name=config.study_name,
        sampler=make_sampler(config.seed), pruner=make_pruner(config.pruner),
        direction=config.direction, load_if_exists=True)
    check_identity(study, config)
    return study


def check_identity(study: optuna.Study, config: TuneConfig) -> None:
    """A resumed or shared study must tune the same model on the same data for one metric."""
    saved = study.user_attrs.get("imgcls")
    direction = study.direction.name.lower()
    if saved is None and direction != config.direction:  # a study made outside imgcls
        raise ConfigError(f"Study {config.study_name!r} in {config.storage_url} is set to "
                          f"{direction}, but --metric {config.metric} needs {config.direction}.",
                          "Start another with --study NAME.")
    if saved is None:
        study.set_user_attr("imgcls", config.identity())
        return
    for key, value in config.identity().items():
        if saved.get(key) != value:
            raise ConfigError(
                f"Study {config.study_name!r} in {config.storage_url} tunes {key} "
                f"{saved.get(key)!r}, not {value!r}.",
                f"Resume it with --{key} {saved.get(key)}, or start another with --study NAME.")


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def objective(trial: Trial, config: TuneConfig, space: list[Param],
              reporter: Reporter | None = None) -> float:
    """Train one trial's config in runs/tune-NAME/trial-N; its best epoch is the value."""
    from .space import apply_params

    values = {param.name: param.suggest(trial) for param in space}
    base = config.base if config.seed is None else replace(config.base, seed=config.seed)
    rerun = replace(apply_params(base, values), select_metric=config.metric)
    # What `imgcls train --config best.toml` runs: this config, outside the tune folder.
    trial.set_user_attr("train_config", asdict(rerun))
    run = replace(rerun, out=str(config.tune_dir), name=f"trial-{trial.number}",
                  exist_ok=True, report=False)
    trial.set_user_attr("run_dir", str(config.tune_dir / run.name))
    try:
        result = fit(run, PruningReporter(trial, config.metric_key, reporter))
    except NonFiniteLossError as exc:
        trial.set_user_attr("error", exc.message)
        raise
    trial.set_user_attr("best_path", str(result.best_path))
    trial.set_user_attr("best_epoch", int(result.best["epoch"]))
    return float(result.best[config.metric_key])


def run_study(config: TuneConfig, on_trial: Callable[[TrialSummary], None] | None = None,
              reporter: Reporter | None = None) -> optuna.Study:
    """Run trials until the study holds ``config.trials`` finished ones (or the timeout)."""
    config.validate()
    spec = get_model(config.base.model).spec
    config.base.validate(spec)
    space = load_space(config, spec)
    study = open_study(config)
    remaining = config.trials - finished_count(study)
    if remaining <= 0:
        return study

    def progress(study: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(TrialSummary.of(trial))

    stop = optuna.study.MaxTrialsCallback(config.trials, states=FINISHED)
    try:
        # n_trials caps this process (failed trials included); the callback stops it
        # once all processes together have finished enough.
        study.optimize(lambda trial: objective(trial, config, space, reporter),
                       n_trials=remaining, timeout=config.timeout,
                       catch=(NonFiniteLossError,), callbacks=[stop, progress])
    except ImgclsError:
        raise
    except optuna.exceptions.OptunaError as exc:
        raise ConfigError(f"optuna stopped the study: {exc}",
                          "Check --storage and the search space.") from exc
    return study
