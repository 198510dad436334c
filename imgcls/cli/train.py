"""imgcls train.

Its options are generated from ``TrainConfig``'s fields (name, type, default,
help), so every option can also be set in a ``--config`` TOML file under the
same name (``--out-dir`` is ``out``), and the saved ``config.toml`` reads back as it
was written.
"""

from __future__ import annotations

import inspect
import os
import typing
from dataclasses import fields
from typing import Any

import typer
from rich.markup import escape

from ..schema import choices_of
from ..train.config import TrainConfig, field_types, read_config_file
from ..train.recipes import describe_recipe, recipe_for
from .console import ConsoleReporter, console, count, err_console, parse_options
from .data import DATA_HELP, WORKERS_HELP, output_is_a_file

# Flags that are not TrainConfig fields; they feed model/data options or pick the run.
EXTRA_OPTIONS: dict[str, tuple[Any, Any, tuple[str, ...], str]] = {
    "config": (str | None, None, ("--config", "-c"),
               "A TOML file of options (e.g. runs/<name>/config.toml); flags override it."),
    "resume": (str | None, None, ("--resume",),
               "Continue the run in this folder exactly where it stopped."),
    "model_opt": (list[str], [], ("--model-opt",), "Model option key=value (repeatable)."),
    "data_opt": (list[str], [], ("--data-opt",), "Dataset option key=value (repeatable)."),
    "path_column": (str | None, None, ("--path-column",), "csv data: the image path column."),
    "label_column": (str | None, None, ("--label-column",), "csv data: the label column."),
    "image_root": (str | None, None, ("--image-root",),
                   "csv data: folder that relative image paths start from."),
}
DATA_COLUMNS = ("path_column", "label_column", "image_root")
# TrainConfig fields whose flag is not their name (``out`` stays ``out`` in config.toml):
# --out-dir is a folder on every command, -o/--output a file.
FLAGS = {"out": ("--out-dir",), "top_k": ("--top-k", "-k")}
HELP = {"data": DATA_HELP,
        "workers": f"{WORKERS_HELP}. Default: 0 for cached pixels, some for --cache none."}
# Not in --help: --out, the older spelling of --out-dir, and -o/--output, refused with a hint.
HIDDEN_OPTIONS: dict[str, Any] = {
    "out_legacy": typer.Option(None, "--out", hidden=True),
    "output": output_is_a_file("train"),
}


def train(ctx: typer.Context, **values: Any) -> None:
    """Train a model and write runs/<name>/ with best.safetensors, metrics and report.html."""
    from ..train.loop import TrainingInterrupted, fit  # imports torch

    given = {name: value for name, value in values.items() if _given(ctx, name)}
    if "out_legacy" in given:
        given.setdefault("out", given.pop("out_legacy"))
    given = {k: v for k, v in given.items() if k not in HIDDEN_OPTIONS}
    try:
        if values["resume"]:
            overrides = {k: v for k, v in given.items() if k != "resume"}
            result = fit(reporter=ConsoleReporter(), resume=values["resume"], **overrides)
        else:
            result = fit(build_config(values["config"], given), ConsoleReporter())
    except TrainingInterrupted as exc:
        err_console.print(escape(exc.message), highlight=False)
        err_console.print(escape(exc.hint or ""), highlight=False)
        raise typer.Exit(130) from None
    if result.skipped and os.environ.get("RANK", "0") == "0":
        skipped = len(result.skipped)
        console.print(f"{count(skipped, 'unreadable image')} {'was' if skipped == 1 else 'were'} "
                      "skipped.")


def build_config(config_file: str | None, given: dict[str, Any]) -> TrainConfig:
    """Defaults, then the config file, then the flags given on the command line."""
    values = read_config_file(config_file) if config_file else {}
    model_options = values.pop("model_options", {})
    data_options = values.pop("data_options", {})
    model_options |= parse_options(given.pop("model_opt", []), "--model-opt")
    data_options |= parse_options(given.pop("data_opt", []), "--data-opt")
    for key in DATA_COLUMNS:
        if given.get(key) is not None:
            data_options[key] = given.pop(key)
    values |= {k: v for k, v in given.items() if k not in EXTRA_OPTIONS}
    chosen = recipe_for(values)
    if chosen:
        time, recipe, reason = chosen
        recipe["model_options"] |= model_options  # the line shows the options it trains with
        console.print(escape(describe_recipe(time, recipe, set(values), reason)),
                      highlight=False)
        model_options = recipe.pop("model_options")
        values = recipe | values
    return TrainConfig(**values, model_options=model_options, data_options=data_options)


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _parameters() -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    types = field_types()
    annotated = typing.get_type_hints(TrainConfig, include_extras=True)
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=typer.Context)]
    for spec in fields(TrainConfig):
        if spec.name in ("model_options", "data_options"):
            continue
        flag = f"--{spec.name.replace('_', '-')}"
        flags = [f"{flag}/--no-{flag[2:]}" if spec.type in (bool, "bool") else flag]
        flags += [spec.metadata["short"]] if "short" in spec.metadata else []
        choices = choices_of(annotated[spec.name])
        option = typer.Option(spec.default, *FLAGS.get(spec.name, flags),
                              help=HELP.get(spec.name, spec.metadata["help"]),
                              metavar=f"[{'|'.join(choices)}]" if choices else None)
        params.append(inspect.Parameter(spec.name, keyword, default=option,
                                        annotation=types[spec.name]))
    for name, (annotation, default, flags, help_text) in EXTRA_OPTIONS.items():
        params.append(inspect.Parameter(name, keyword, annotation=annotation,
                                        default=typer.Option(default, *flags, help=help_text)))
    params += [inspect.Parameter(name, keyword, annotation=str | None, default=option)
               for name, option in HIDDEN_OPTIONS.items()]
    return params


train.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
