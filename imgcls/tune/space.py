"""The search space: one default per model family, TOML files to set your own, and sampling.

A space maps a TrainConfig field (``lr``), a model option (``model_options.width``) or
``augment_strength`` to a range or a list of choices. Nothing here imports optuna:
:meth:`Param.suggest` only calls the trial it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..data.augment import build_pipeline
from ..errors import ConfigError, ImgclsError
from ..options import builder_options, did_you_mean
from ..specs import ModelSpec
from ..train.config import TrainConfig, dump_toml, normalize_keys, read_toml

KINDS = ("float", "int", "categorical")
TABLE_KEYS = {"float": ("type", "low", "high", "log", "step"),
              "int": ("type", "low", "high", "log", "step"),
              "categorical": ("type", "choices")}
# Fields a trial may not change: what and where to train, and the tune's own settings.
NOT_TUNABLE = ("model", "data", "epochs", "time", "out", "name", "exist_ok", "device", "workers",
               "cache", "report", "select_metric", "seed", "weights", "model_options",
               "data_options")
AUGMENT_STRENGTH = "augment_strength"
MODEL_OPTIONS = "model_options"


@dataclass(frozen=True)
class Param:
    """One dimension: a float or int range (optionally log-scaled or stepped) or choices."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Ask an optuna trial for this dimension's value."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log,
                                   step=self.step)

    def candidates(self) -> list[Any]:
        """Values that show whether the whole range is acceptable to TrainConfig."""
        if self.kind == "categorical":
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]

    def table(self) -> dict[str, Any]:
        """This dimension as the table :func:`parse_param` reads."""
        if self.kind == "categorical":
            return {"type": self.kind, "choices": list(self.choices)}
        table = {"type": self.kind, "low": self.low, "high": self.high}
        table |= {"log": True} if self.log else {}
        return table | ({"step": self.step} if self.step is not None else {})


COMMON = (
    Param("lr", "float", 1e-4, 1e-2, log=True),
    Param("weight_decay", "float", 1e-5, 0.1, log=True),
    Param("optimizer", "categorical", choices=("adamw", "adam", "sgd")),
    Param("batch_size", "categorical", choices=(16, 32, 64)),
    Param("label_smoothing", "float", 0.0, 0.2),
    Param(AUGMENT_STRENGTH, "float", 0.0, 1.0),
)
FINETUNE = (
    Param("lr", "float", 1e-4, 3e-3, log=True),
    Param("backbone_lr_scale", "float", 0.01, 1.0, log=True),
    Param("weight_decay", "float", 1e-5, 0.1, log=True),
    Param("optimizer", "categorical", choices=("adamw", "sgd")),
    Param("batch_size", "categorical", choices=(16, 32, 64)),
    Param("label_smoothing", "float", 0.0, 0.2),
    Param(AUGMENT_STRENGTH, "float", 0.0, 1.0),
)
# Model options tuned wherever a builder takes them, by option name ...
OPTION_RANGES = {
    "hidden": Param("model_options.hidden", "int", 32, 256, log=True),
    "width": Param("model_options.width", "float", 0.5, 2.0),
    "dropout": Param("model_options.dropout", "float", 0.0, 0.6),
}
# ... and where the valid values depend on the family (resnet-s depth is 6n+2).
FAMILY_RANGES = {
    "vgg-bn": {"depth": Param("model_options.depth", "int", 2, 5)},
    "resnet-s": {"depth": Param("model_options.depth", "categorical", choices=(8, 14, 20))},
}


def model_option_names(spec: ModelSpec) -> list[str] | None:
    """The options ``spec.build`` accepts; None when it takes any (``**options``)."""
    names, takes_any = builder_options(spec.build)
    return None if takes_any else names


def default_space(spec: ModelSpec, base: TrainConfig | None = None) -> list[Param]:
    """Optimiser, regularisation and augmentation ranges, plus the model's own options.

    When the base config starts from pretrained weights, the fine-tuning space instead:
    lower learning rates, the backbone's rate scale and head-only epochs.
    """
    ranges = OPTION_RANGES | FAMILY_RANGES.get(spec.name, {})
    names = model_option_names(spec) or []
    common = finetune_space(base) if base is not None and base.weights else COMMON
    return [*common, *(ranges[name] for name in names if name in ranges)]


def finetune_space(base: TrainConfig) -> tuple[Param, ...]:
    """Around the fine-tuning defaults (lr 1e-3, backbone x0.1): pretrained features need
    smaller steps than training from scratch; the head may train alone for an epoch or two
    (never the whole run)."""
    freeze = min(2, base.epochs - 1)
    return (*FINETUNE,
            *((Param("freeze_backbone_epochs", "int", 0, freeze),) if freeze >= 1 else ()))


def space_to_toml(space: list[Param]) -> str:
    """A space as a file that :func:`read_space` reads back."""
    tables: dict[str, Any] = {}
    for param in space:  # model_options.depth is the table depth inside model_options
        *parents, leaf = param.name.split(".")
        node = tables
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = param.table()
    return dump_toml(tables, "imgcls tune search space. Use it with: "
                             "imgcls tune --space <this file>")


def tunable_names() -> list[str]:
    return [f.name for f in fields(TrainConfig) if f.name not in NOT_TUNABLE] + [AUGMENT_STRENGTH]


def read_space(path: str | Path, spec: ModelSpec) -> list[Param]:
    """Parse a space file; unknown names, keys and types are ConfigErrors with a hint."""
    path = Path(path)
    data = read_toml(path, "Search space file",
                     "Write one with: imgcls tune --print-space > space.toml",
                     "Write each dimension as a table, e.g. [lr] low = 1e-4 ...")
    space = []
    for raw, value in data.items():
        if raw.replace("-", "_") == MODEL_OPTIONS:
            space += _model_params(value, spec, str(path))
            continue
        name = _known(raw.replace("-", "_"), tunable_names(), str(path), "imgcls tune options")
        space.append(parse_param(name, value, str(path)))
    if not space:
        raise ConfigError(f"{path} defines no dimensions to search.",
                          "Add one, e.g. [lr] low = 1e-4, high = 1e-2, log = true.")
    return space


def _model_params(tables: Any, spec: ModelSpec, source: str) -> list[Param]:
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: {MODEL_OPTIONS} must be a table of options.",
                          f"Write e.g. [{MODEL_OPTIONS}.width] low = 0.5, high = 2.0.")
    names = model_option_names(spec)
    params = []
    for raw, value in tables.items():
        name = raw.replace("-", "_")
        if names is not None:
            _known(name, names, source, f"the options of {spec.name}: {', '.join(names)}")
        params.append(parse_param(f"{MODEL_OPTIONS}.{name}", value, source))
    return params


def _known(name: str, allowed: list[str], source: str, where: str) -> str:
    if name in allowed:
        return name
    hint = did_you_mean(name, allowed, n=1).rstrip() or f"Choose from {where}."
    if name in NOT_TUNABLE:
        hint = f"{name} is fixed for the whole study: set it with a flag or --config."
    raise ConfigError(f"{source}: {name!r} cannot be tuned.", hint)


def parse_param(name: str, value: Any, source: str) -> Param:
    """``[1, 2]`` (choices) or a table: type, low, high, log, step / choices."""
    if isinstance(value, list):
        value = {"choices": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {name} = {value!r} is not a range or a list of choices.",
                          f'Write a table, e.g. [{name}] low = ..., high = ..., or a list.')
    if "choices" in value and {"low", "high"} & set(value):
        raise ConfigError(f"{source}: {name} has both choices and a low/high range.",
                          "Give choices = [...] for a list, or low and high for a range.")
    kind = value.get("type") or _infer_kind(value)
    if kind not in KINDS:
        raise ConfigError(f"{source}: {name} has unknown type {kind!r}.",
                          f"Choose {', '.join(KINDS)}.")
    unknown = sorted(set(value) - set(TABLE_KEYS[kind]))
    if unknown:
        hint = did_you_mean(unknown[0], TABLE_KEYS[kind], n=1)
        raise ConfigError(f"{source}: {name} has unknown key {unknown[0]!r} for type {kind}.",
                          f"{hint}A {kind} takes: {', '.join(TABLE_KEYS[kind])}.")
    if kind == "categorical":
        return _choices(name, value.get("choices"), source)
    return _range(name, kind, value, source)


def _infer_kind(table: dict[str, Any]) -> str:
    if "choices" in table:
        return "categorical"
    ends = (table.get("low"), table.get("high"), table.get("step", 1))
    return "int" if all(isinstance(v, int) and not isinstance(v, bool) for v in ends) else "float"


def _choices(name: str, choices: Any, source: str) -> Param:
    scalar = (str, int, float, bool)
    if not isinstance(choices, list) or not choices or not all(
            isinstance(c, scalar) for c in choices):
        raise ConfigError(f"{source}: {name} needs a non-empty list of choices "
                          "(strings, numbers or booleans).",
                          f'For example: {name} = ["a", "b"].')
    return Param(name, "categorical", choices=tuple(choices))


def _range(name: str, kind: str, table: dict[str, Any], source: str) -> Param:
    low, high, step = table.get("low"), table.get("high"), table.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if low is None or high is None or any(
            isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
        raise ConfigError(f"{source}: {name} needs numbers low and high.",
                          f"For example: [{name}] low = 0.0, high = 0.5.")
    log = table.get("log", False)
    problem = ("low must be below high" if low >= high else
               "log must be true or false" if not isinstance(log, bool) else
               "a log range needs low > 0" if log and low <= 0 else
               "log and step cannot be combined" if log and step is not None else
               "step must be positive" if step is not None and step <= 0 else
               "an int range needs whole numbers" if kind == "int" and any(
                   float(v) != int(v) for v in numbers) else None)
    if problem:
        raise ConfigError(f"{source}: {name}: {problem} (low={low}, high={high}).",
                          f"Fix [{name}] in {source}.")
    return Param(name, kind, low, high, log, step)


def augment_for(strength: float) -> str:
    """An --augment string that grows from a plain flip (0) to strong geometry and colour (1)."""
    if strength < 0.005:
        return "flip"
    return (f"flip,translate={0.1 * strength:.3g},zoom={0.2 * strength:.3g},"
            f"color-jitter={0.3 * strength:.3g}")


def apply_params(base: TrainConfig, values: dict[str, Any], source: str = "search space"
                 ) -> TrainConfig:
    """The base config with one trial's values (types checked as strictly as a config file)."""
    top: dict[str, Any] = {}
    model_options = dict(base.model_options)
    for name, value in values.items():
        if name.startswith(MODEL_OPTIONS + "."):
            model_options[name.split(".", 1)[1]] = value
        elif name == AUGMENT_STRENGTH:
            top["augment"] = augment_for(float(value))
        else:
            top[name] = value
    return replace(base, **normalize_keys(top, source), model_options=model_options)


def check_space(space: list[Param], base: TrainConfig, spec: ModelSpec, source: str) -> None:
    """Refuse a space whose ends or choices TrainConfig would reject, before any trial runs."""
    seen = [param.name for param in space]
    twice = sorted({name for name in seen if seen.count(name) > 1})
    if twice or (AUGMENT_STRENGTH in seen and "augment" in seen):
        raise ConfigError(f"{source}: {', '.join(twice) or 'augment'} is searched twice.",
                          "Keep one of them (augment_strength builds an --augment string).")
    for param in space:
        if param.name.startswith(MODEL_OPTIONS + "."):
            continue  # the builder checks its own values when a trial builds the model
        for value in param.candidates():
            try:
                config = apply_params(base, {param.name: value}, source)
                config.validate(spec)
                build_pipeline(config.augment)
            except ImgclsError as exc:  # UnknownNameError for an unknown augmentation
                raise ConfigError(f"{source}: {param.name} = {value!r} is not usable: "
                                  f"{exc.message}", exc.hint) from exc
