"""imgcls tune: search training options with optuna; print a line per trial and the best."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from ..errors import require_extra
from .console import console, err_console, parse_options, print_table, print_warning
from .data import data_option

if TYPE_CHECKING:
    from ..train.config import TrainConfig
    from ..tune.config import TuneConfig
    from ..tune.report import TuneResult
    from ..tune.study import TrialSummary

# Tuning runs many trainings: a shorter default than imgcls train's 10 epochs.
DEFAULT_EPOCHS = 8
SHOWN_TRIALS = 5


# The options live here, so tune() itself stays a readable page.
MODEL = typer.Option(None, "--model", "-m", show_default=False,
                     help="Model name (imgcls models). Default: basic-cnn.")
TRIALS = typer.Option(30, "--trials", help="Finished trials the study should hold (all "
                      "processes together; a resumed study counts its earlier ones).")
EPOCHS = typer.Option(None, "--epochs", "-e", show_default=False,
                      help=f"Epochs per trial. Default: {DEFAULT_EPOCHS}.")
SPACE = typer.Option(None, "--space", help="Search space TOML file (default: the model's own).")
METRIC = typer.Option("accuracy", "--metric",
                      help="accuracy, macro-f1, loss, or map (multi-label data).")
STUDY = typer.Option(None, "--study", help="Study name (default: MODEL-DATA); results go to "
                     "OUT_DIR/tune-NAME/.")
STORAGE = typer.Option(None, "--storage", help="SQLAlchemy URL of the study database. "
                       "Default: sqlite:///OUT_DIR/tune.db.")
TIMEOUT = typer.Option(None, "--timeout", help="Start no trial after this long, e.g. 90s, 30m, "
                       "2h.")
PRUNER = typer.Option("median", "--pruner", help="median, halving or none.")
SEED = typer.Option(None, "--seed", help="Seed of the sampler and of every trial's training: "
                    "the same seed proposes the same trials.")
CONFIG = typer.Option(None, "--config", "-c", help="Training options every trial shares (a "
                      "TOML file as for imgcls train --config).")
OUT_DIR = typer.Option(None, "--out-dir", show_default=False,
                       help="Folder that holds run folders. Default: runs.")
MODEL_OPT = typer.Option([], "--model-opt", help="Fixed model option key=value (repeatable).")
DATA_OPT = typer.Option([], "--data-opt", help="Dataset option key=value (repeatable).")
WEIGHTS = typer.Option(None, "--weights", help="Pretrained weights every trial starts from "
                       "(imagenet, a tag or a file): the default space becomes the "
                       "fine-tuning one.")
PRINT_SPACE = typer.Option(False, "--print-space", help="Print the search space as TOML and "
                           "exit.")


def tune(
    model: str | None = MODEL, data: str | None = data_option(), trials: int = TRIALS,
    epochs: int | None = EPOCHS, space: str | None = SPACE, metric: str = METRIC,
    study: str | None = STUDY, storage: str | None = STORAGE, timeout: str | None = TIMEOUT,
    pruner: str = PRUNER, seed: int | None = SEED, config: str | None = CONFIG,
    out_dir: str | None = OUT_DIR, model_opt: list[str] = MODEL_OPT,
    data_opt: list[str] = DATA_OPT, print_space: bool = PRINT_SPACE,
    weights: str | None = WEIGHTS,
) -> None:
    """Tune training options with optuna; write best.toml, best.safetensors, tune-report.html."""
    # Imported here: `imgcls --help` must not load optuna or torch.
    optuna = require_extra("optuna")

    from ..train.loop import TrainingInterrupted
    from ..tune.config import TuneConfig, parse_duration
    from ..tune.run import tune as run_tune

    base = base_config(config, {"model": model, "data": data, "epochs": epochs,
                                "out": out_dir, "weights": weights}, model_opt, data_opt)
    settings = TuneConfig(base=base, trials=trials, space=space, metric=metric, study=study,
                          storage=storage, timeout=parse_duration(timeout), pruner=pruner,
                          seed=seed)
    if print_space:
        _print_space(settings)
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    console.print(escape(f"tuning {base.model} on {base.data}: study {settings.study_name} "
                         f"in {settings.storage_url}, trials in {settings.tune_dir}/"),
                  highlight=False)
    try:
        result = run_tune(settings, on_trial=lambda t: print_trial(t, metric))
    except TrainingInterrupted:
        err_console.print("Tuning interrupted. Run the same command again to continue the "
                          "study.", highlight=False)
        raise typer.Exit(130) from None
    print_result(result)
    if result.best_number is None:
        raise typer.Exit(1)


def base_config(config_file: str | None, given: dict[str, Any], model_opt: list[str],
                data_opt: list[str]) -> TrainConfig:
    """Tune defaults, then the --config file, then the flags given."""
    from ..train.config import TrainConfig, read_config_file

    values = {"epochs": DEFAULT_EPOCHS} | (read_config_file(config_file) if config_file else {})
    model_options = values.pop("model_options", {}) | parse_options(model_opt, "--model-opt")
    data_options = values.pop("data_options", {}) | parse_options(data_opt, "--data-opt")
    values |= {k: v for k, v in given.items() if v is not None}
    return TrainConfig(**values, model_options=model_options, data_options=data_options)


def _print_space(settings: TuneConfig) -> None:
    from ..registry import get_model
    from ..tune.space import space_to_toml
    from ..tune.study import load_space

    spec = get_model(settings.base.model).spec
    console.print(space_to_toml(load_space(settings, spec)), markup=False, highlight=False,
                  end="")


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={_fmt(value)}" for name, value in params.items())


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_trial(trial: TrialSummary, metric: str) -> None:
    """One line: number, state, value (after how many epochs), parameters."""
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    state = (f"pruned after epoch {trial.epochs}" if trial.state == "pruned"
             else f"{trial.state} ({trial.epochs} epoch{'s' if trial.epochs != 1 else ''})")
    line = f"trial {trial.number:>3}  {metric} {value}  {state}  {format_params(trial.params)}"
    if trial.error:
        line += f"  error: {trial.error}"
    console.print(escape(line), highlight=False)


def print_result(result: TuneResult) -> None:
    """The best trials as a table, then where best.toml, the checkpoint and the report are."""
    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items())
    console.print(escape(f"study {result.study_name}: {counts}"), highlight=False)
    if result.best_number is None:
        print_warning("no trial completed yet, so there is no best trial; run the same "
                      "command again to continue, or widen --trials.")
        return
    names = sorted({name for row in result.rows for name in row["params"]})
    print_table(("trial", result.metric, "epochs", "seconds", *names),
                ((row["number"], f"{row['value']:.4f}", row["epochs"],
                  "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
                  *(_fmt(row["params"].get(n, "")) for n in names))
                 for row in result.rows[:SHOWN_TRIALS]), title="best trials")
    console.print(escape(f"best trial {result.best_number}: {result.metric} "
                         f"{result.best_value:.4f}"), highlight=False)
    console.print(escape(f"best config: {result.best_toml} (rerun: imgcls train --config "
                         f"{result.best_toml})"), highlight=False)
    if result.best_checkpoint is not None:
        console.print(escape(f"best checkpoint: {result.best_checkpoint}"), highlight=False)
    else:
        print_warning("the best trial ran on another machine: its checkpoint is in "
                      "its trial folder there.")
    console.print(escape(f"report: {result.report_path}"), highlight=False)
