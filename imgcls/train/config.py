"""TrainConfig: every ``imgcls train`` option in one place, and its TOML round trip.

Each field's metadata holds its CLI help, so the CLI, config files and the
saved ``config.toml`` cannot disagree about names, types or defaults.
"""

from __future__ import annotations

import math
import sys
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..data.cache import CACHE_MODES
from ..errors import ConfigError
from ..options import check_finite_option, did_you_mean
from ..specs import ModelSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# The Keras tutorial's ImageDataGenerator settings (a preset of imgcls.data.augment).
DEFAULT_AUGMENT = "seed"


OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "onecycle", "step", "none")
SELECT_METRICS = ("accuracy", "macro-f1", "loss")
CLASS_WEIGHTS = ("none", "auto")
SAMPLERS = ("shuffle", "balanced")
AMP_DTYPES = ("auto", "bf16", "fp16")
# Far above any classifier's input, far below a size that exhausts memory before
# the first batch: a typo like --img-size 100000 gets a clear error instead.
MAX_IMG_SIZE = 4096
# Defaults of the options a recipe sets (TrainConfig's own default is None: "unset").
SCRATCH_DEFAULTS: dict[str, float] = {"lr": 2e-3, "warmup_epochs": 1.0, "label_smoothing": 0.0,
                                      "backbone_lr_scale": 1.0}
# From pretrained weights: a lower peak rate, the backbone at a tenth of the head's
# (discriminative rates), a short warm-up for the fresh head, label smoothing 0.1 (as
# torchvision's and timm's ImageNet recipes), AdamW as from scratch. Stated in the run's
# summary.
FINETUNE_DEFAULTS: dict[str, float] = {"lr": 1e-3, "warmup_epochs": 0.5, "label_smoothing": 0.1,
                                       "backbone_lr_scale": 0.1}
# Where a run goes and how it is started, not what it trains: left out of config.toml.
RUN_IDENTITY = ("name", "exist_ok")


def _opt(default: Any, help: str, short: str | None = None) -> Any:
    extra = {"short": short} if short else {}
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Every option of ``imgcls train``; saved with each run as config.toml."""

    model: str = _opt("basic-cnn", "Model name (imgcls models).", "-m")
    data: str = _opt("shapes", "A folder of class sub-folders, or a dataset name like shapes.",
                     "-d")
    epochs: int = _opt(10, "Training epochs.", "-e")
    batch_size: int = _opt(64, "Images per batch (per process under torchrun).", "-b")
    lr: float | None = _opt(None, "Peak learning rate (default 2e-3; 1e-3 when fine-tuning "
                                  "from --weights).")
    optimizer: str = _opt("adamw", "adamw, adam or sgd.")
    momentum: float = _opt(0.9, "SGD momentum (Adam's beta1 stays 0.9).")
    nesterov: bool = _opt(True, "Nesterov momentum for SGD.")
    weight_decay: float = _opt(0.05, "Weight decay (decoupled for adamw); not on biases.")
    scheduler: str = _opt("cosine", "Learning-rate schedule: cosine, onecycle, step or none.")
    warmup_epochs: float | None = _opt(None, "Linear warm-up epochs, at most half the run; for "
                                             "onecycle, the epochs to the peak (default 1; "
                                             "0.5 when fine-tuning).")
    step_size: int = _opt(0, "step: epochs between decays (0: a third of --epochs).")
    gamma: float = _opt(0.1, "step: factor applied at each decay.")
    label_smoothing: float | None = _opt(None, "Label smoothing, e.g. 0.1 (default 0; 0.1 when "
                                               "fine-tuning).")
    grad_clip: float = _opt(0.0, "Clip the gradient norm to this value (0: off).")
    skip_nonfinite: bool = _opt(False, "Skip steps whose loss is NaN or infinite instead of "
                                       "stopping with an error.")
    weights: str | None = _opt(None, "Pretrained weights to fine-tune from: imagenet (the "
                                     "model's default), a tag from `imgcls models --details "
                                     "NAME`, or a local state-dict file. Fetched on first use "
                                     "into the torch hub cache and verified.")
    weights_mirror: str | None = _opt(None, "Base URL to download weights files from instead "
                                            "of their own URL (default: "
                                            "$IMGCLS_WEIGHTS_MIRROR).")
    freeze_backbone: bool = _opt(False, "Train only the classification head (the last "
                                        "linear layer).")
    freeze_backbone_epochs: int = _opt(0, "Train only the head for this many epochs, then "
                                          "everything.")
    backbone_lr_scale: float | None = _opt(None, "Learning-rate multiplier for everything but "
                                                 "the head (default 1; 0.1 when fine-tuning).")
    ema: bool = _opt(False, "Keep an exponential moving average of the weights; "
                            "evaluate and save it.")
    ema_decay: float = _opt(0.998, "EMA decay per step.")
    amp: bool = _opt(False, "Mixed precision autocast (bf16/fp16 on CUDA, bf16 on CPU).")
    amp_dtype: str = _opt("auto", "auto, bf16 or fp16 (fp16 only on CUDA).")
    class_weights: str = _opt("none", "none, or auto: weight the loss by inverse class "
                                      "frequency.")
    sampler: str = _opt("shuffle", "shuffle, or balanced: draw each class equally often.")
    select_metric: str = _opt("accuracy", "Metric that picks best.safetensors: accuracy, "
                                          "macro-f1 or loss.")
    patience: int = _opt(0, "Stop after this many epochs without improvement (0: never).")
    top_k: int = _opt(5, "k of the top-k validation accuracy.")
    report: bool = _opt(True, "Write curves.png, confusion.png, per-class CSVs and "
                              "report.html at the end.")
    report_cams: bool = _opt(True, "Show a Grad-CAM overlay beside each of report.html's "
                                   "most confident mistakes.")
    img_size: int | None = _opt(None, "Input size (default: the model's).")
    augment: str = _opt(DEFAULT_AUGMENT, 'Augmentations, e.g. "flip,shear=0.2,zoom=0.2", '
                                         "or none.", "-a")
    seed: int = _opt(0, "Random seed.")
    device: str = _opt("auto", "auto, cpu or cuda.")
    out: str = _opt("runs", "Folder that holds run folders.", "-o")
    name: str | None = _opt(None, "Run folder name.")
    exist_ok: bool = _opt(False, "Reuse an existing run folder.")
    val_split: float = _opt(0.2, "Validation fraction when the data has no val folder.")
    cache: str = _opt("memory", "Decoded-image cache: memory, disk or none.")
    workers: int | None = _opt(None, "DataLoader worker processes (default: none for cached "
                                     "pixels, some for --cache none).")
    model_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Model options (--model-opt key=value)."})
    data_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Dataset options (--data-opt key=value)."})

    def __post_init__(self) -> None:
        # Unset optimisation options take the defaults of the recipe: from scratch, or
        # fine-tuning when training starts from --weights.
        recipe = FINETUNE_DEFAULTS if self.weights else SCRATCH_DEFAULTS
        for name, value in recipe.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self, spec: ModelSpec) -> None:
        """Raise ConfigError for the first invalid option, with an example that works."""
        # Finite first: inf and nan pass every comparison below (or fail it confusingly).
        self._check_finite()
        for ok, message, example in self._checks(spec):
            if not ok:
                raise ConfigError(message, f"For example: {example}.")

    def _check_finite(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                flag = "--" + name.replace("_", "-")
                example = SCRATCH_DEFAULTS.get(name, getattr(TrainConfig, name))
                raise ConfigError(f"{flag} must be a finite number, got {value}.",
                                  f"For example: {flag} {example}.")
        for flag, options in (("--model-opt", self.model_options),
                              ("--data-opt", self.data_options)):
            for key, value in options.items():
                check_finite_option(flag, key, value)

    def _checks(self, spec: ModelSpec) -> list[tuple[bool, str, str]]:
        return [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}.", "--epochs 10"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}.",
             "--batch-size 64"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}.", "--lr 0.001"),
            (self.workers is None or self.workers >= 0,
             f"--workers must be 0 or more, got {self.workers}.", "--workers 0"),
            (self.img_size is None or self.img_size >= spec.min_size,
             f"--img-size {self.img_size} is below {spec.name}'s minimum of {spec.min_size}.",
             f"--img-size {spec.input_size[0]}"),
            (self.img_size is None or self.img_size <= MAX_IMG_SIZE,
             f"--img-size {self.img_size} is above the limit of {MAX_IMG_SIZE}.",
             f"--img-size {spec.input_size[0]}"),
            (self.momentum >= 0, f"--momentum must be 0 or more, got {self.momentum}.",
             "--momentum 0.9"),
            _choice("--optimizer", self.optimizer, OPTIMIZERS),
            _choice("--scheduler", self.scheduler, SCHEDULERS),
            _choice("--select-metric", self.select_metric, SELECT_METRICS),
            _choice("--class-weights", self.class_weights, CLASS_WEIGHTS),
            _choice("--sampler", self.sampler, SAMPLERS),
            _choice("--amp-dtype", self.amp_dtype, AMP_DTYPES),
            _choice("--cache", self.cache, CACHE_MODES),
            (self.weight_decay >= 0, "--weight-decay must be 0 or more.", "--weight-decay 0.05"),
            (self.warmup_epochs >= 0, "--warmup-epochs must be 0 or more.", "--warmup-epochs 1"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1).",
             "--label-smoothing 0.1"),
            (self.grad_clip >= 0, "--grad-clip must be 0 (off) or positive.", "--grad-clip 1.0"),
            (self.backbone_lr_scale > 0, "--backbone-lr-scale must be positive.",
             "--backbone-lr-scale 0.1"),
            (0 < self.ema_decay < 1, "--ema-decay must be between 0 and 1.", "--ema-decay 0.998"),
            (self.freeze_backbone_epochs >= 0, "--freeze-backbone-epochs must be 0 or more.",
             "--freeze-backbone-epochs 1"),
            (self.patience >= 0, "--patience must be 0 (off) or more.", "--patience 5"),
            (self.top_k >= 1, "--top-k must be at least 1.", "--top-k 5"),
            (self.step_size >= 0, "--step-size must be 0 or more.", "--step-size 3"),
        ]

    def to_toml(self) -> str:
        """The reproducible part of the config as TOML (run name and None values left out)."""
        values = {k: v for k, v in asdict(self).items()
                  if k not in RUN_IDENTITY and v is not None}
        return dump_toml(values, "imgcls train config. Reproduce this run: "
                                 "imgcls train --config <this file>")


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> tuple[bool, str, str]:
    return (value in allowed, f"Unknown {flag} {value!r}; choose {', '.join(allowed)}.",
            f"{flag} {allowed[0]}")


def dump_toml(values: dict[str, Any], comment: str) -> str:
    """``values`` as TOML (tomli-w: keys and strings quoted as TOML wants) under ``# comment``."""
    try:
        return f"# {comment}\n{tomli_w.dumps(values)}"
    except TypeError as exc:  # e.g. None inside a list of model options
        raise ConfigError(f"Cannot write the config as TOML: {exc}.",
                          "Model and data options must be strings, numbers, booleans or "
                          "lists.") from exc


def field_types() -> dict[str, Any]:
    """Resolved annotation of each TrainConfig field (annotations are strings here)."""
    return typing.get_type_hints(TrainConfig)


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    if typing.get_origin(annotation) is dict:
        allowed: tuple = (dict,)
    else:
        allowed = typing.get_args(annotation) or (annotation,)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = next(t for t in allowed if t is not type(None))
    if isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{source}: {key} should be {base.__name__}, got {value!r}.",
                      f"Fix {key} in {source}.")


def normalize_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Accept kebab-case keys, reject unknown ones with a suggestion, check types."""
    types = field_types()
    result: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in types:
            hint = did_you_mean(key, types, n=1).rstrip() or "See `imgcls train --help`."
            raise ConfigError(f"{source}: unknown option {raw_key!r}.", hint)
        result[key] = _coerce(key, value, types[key], source)
    return result


def read_toml(path: str | Path, what: str, missing_hint: str, syntax_hint: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError naming ``what``."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}", missing_hint) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", syntax_hint) from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a TOML file (top-level keys are ``imgcls train`` options)."""
    data = read_toml(path, "Config file", "Pass a .toml file, e.g. runs/<name>/config.toml.",
                     "Write options as key = value, e.g. epochs = 10.")
    return normalize_keys(data, str(path))


def config_from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    return TrainConfig(**normalize_keys(values, source))
