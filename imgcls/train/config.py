"""TrainConfig: every ``imgcls train`` option in one place, and its TOML round trip.

Each field's metadata holds its CLI help, so the CLI, config files and the
saved ``config.toml`` cannot disagree about names, types or defaults.
"""

from __future__ import annotations

import functools
import sys
import typing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import ConfigDict, Field, TypeAdapter

from ..data.cache import CACHE_MODES
from ..errors import ConfigError
from ..options import check_finite_option, did_you_mean
from ..schema import MAX_SIDE, MIN_SIDE, Location, one_of, validate
from ..specs import ModelSpec
from ..system import max_workers
from .budget import BUDGET_MAX_EPOCHS, DEFAULT_EPOCHS, parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# The Keras tutorial's ImageDataGenerator settings (a preset of imgcls.data.augment).
DEFAULT_AUGMENT = "seed"


OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "onecycle", "step", "none")
SELECT_METRICS = ("accuracy", "macro-f1", "loss", "map")  # map: multi-label only
TASKS = ("multiclass", "multilabel")
MULTILABEL_LOSSES = ("bce", "asl")
CLASS_WEIGHTS = ("none", "auto")
SAMPLERS = ("shuffle", "balanced")
AMP_DTYPES = ("auto", "bf16", "fp16")
RESIZE_MODES = ("stretch", "shorter")
MAX_IMG_SIZE = MAX_SIDE  # a typo like --img-size 100000 gets a clear error
# Defaults of the options a recipe sets (TrainConfig's own default is None: "unset").
# One epoch of warm-up, for onecycle too (its peak after one epoch, not at 30% of the
# run): every recipe in docs/training.md was measured with it. --warmup-epochs 0 gives
# onecycle torch's 30%.
SCRATCH_DEFAULTS: dict[str, float] = {"lr": 2e-3, "warmup_epochs": 1.0, "label_smoothing": 0.0,
                                      "backbone_lr_scale": 1.0}
# From pretrained weights: a lower peak rate, the backbone at a tenth of the head's
# (discriminative rates), a short warm-up for the fresh head, label smoothing 0.1 (as
# torchvision's and timm's ImageNet recipes), AdamW as from scratch. Stated in the run's
# summary.
FINETUNE_DEFAULTS: dict[str, float] = {"lr": 1e-3, "warmup_epochs": 0.5, "label_smoothing": 0.1,
                                       "backbone_lr_scale": 0.1}
MAX_THREADS = 1024
# Where a run goes and how it is started, not what it trains: left out of config.toml.
RUN_IDENTITY = ("name", "exist_ok")


def _opt(default: Any, help: str, short: str | None = None) -> Any:
    extra = {"short": short} if short else {}
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Every option of ``imgcls train``; saved with each run as config.toml.

    The annotations are its schema (strict: no "3" for 3, every float finite); the
    model-dependent limits are checked by :meth:`validate`.
    """

    # Instances are checked again whenever validated: fields may be set after creation.
    __pydantic_config__ = ConfigDict(strict=True, allow_inf_nan=False,
                                     revalidate_instances="always")

    model: str = _opt("basic-cnn", "Model name (imgcls models).", "-m")
    data: str = _opt("shapes", "A folder of class sub-folders, or a dataset name like shapes.",
                     "-d")
    epochs: Annotated[int, Field(ge=1)] | None = _opt(
        None, "Training epochs (default 10; with --time, the most the plan may use, default "
              "1000).", "-e")
    time: str | None = _opt(
        None, "Time budget, e.g. 90s, 10m or 1h30m: the epoch count and the LR schedule are "
              "fitted to it from the measured speed, and the run ends on time.")
    batch_size: Annotated[int, Field(ge=1)] = _opt(
        64, "Images per batch (per process under torchrun).", "-b")
    lr: Annotated[float, Field(gt=0)] | None = _opt(
        None, "Peak learning rate (default 2e-3; 1e-3 when fine-tuning from --weights).")
    optimizer: Annotated[str, one_of(OPTIMIZERS)] = _opt("adamw", "adamw, adam or sgd.")
    momentum: Annotated[float, Field(ge=0)] = _opt(0.9, "SGD momentum (Adam's beta1 stays 0.9).")
    nesterov: bool = _opt(True, "Nesterov momentum for SGD.")
    weight_decay: Annotated[float, Field(ge=0)] = _opt(
        0.05, "Weight decay (decoupled for adamw); not on biases.")
    scheduler: Annotated[str, one_of(SCHEDULERS)] = _opt(
        "cosine", "Learning-rate schedule: cosine, onecycle, step or none.")
    warmup_epochs: Annotated[float, Field(ge=0)] | None = _opt(
        None, "Linear warm-up epochs, at most half the run; for onecycle, the epochs to the "
              "peak (default 1; 0.5 when fine-tuning).")
    step_size: Annotated[int, Field(ge=0)] = _opt(
        0, "step: epochs between decays (0: a third of --epochs).")
    gamma: float = _opt(0.1, "step: factor applied at each decay.")
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] | None = _opt(
        None, "Label smoothing, e.g. 0.1 (default 0; 0.1 when fine-tuning).")
    grad_clip: Annotated[float, Field(ge=0)] = _opt(
        0.0, "Clip the gradient norm to this value (0: off).")
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
    freeze_backbone_epochs: Annotated[int, Field(ge=0)] = _opt(
        0, "Train only the head for this many epochs, then everything.")
    cache_features: bool = _opt(True, "While the backbone is frozen and nothing is augmented, "
                                      "compute its features once per image and train the "
                                      "head on them.")
    backbone_lr_scale: Annotated[float, Field(gt=0)] | None = _opt(
        None, "Learning-rate multiplier for everything but the head (default 1; 0.1 when "
              "fine-tuning).")
    ema: bool = _opt(False, "Keep an exponential moving average of the weights; "
                            "evaluate and save it.")
    ema_decay: Annotated[float, Field(gt=0, lt=1)] = _opt(0.998, "EMA decay per step.")
    amp: bool = _opt(False, "Mixed precision autocast (bf16/fp16 on CUDA, bf16 on CPU).")
    amp_dtype: Annotated[str, one_of(AMP_DTYPES)] = _opt(
        "auto", "auto, bf16 or fp16 (fp16 only on CUDA).")
    class_weights: Annotated[str, one_of(CLASS_WEIGHTS)] = _opt(
        "none", "none, or auto: weight the loss by inverse class frequency (multi-label: "
                "each class's positives by its negatives/positives ratio).")
    sampler: Annotated[str, one_of(SAMPLERS)] = _opt(
        "shuffle", "shuffle, or balanced: draw each class equally often.")
    select_metric: Annotated[str, one_of(SELECT_METRICS)] = _opt(
        "accuracy", "Metric that picks best.safetensors: accuracy, macro-f1, loss, or map "
                    "(multi-label).")
    task: Annotated[str, one_of(TASKS)] | None = _opt(
        None, "multiclass or multilabel (default: detected from the data).")
    multilabel_loss: Annotated[str, one_of(MULTILABEL_LOSSES)] = _opt(
        "bce", "Multi-label loss: bce, or asl (asymmetric loss, for label sets with many "
               "absent classes).")
    patience: Annotated[int, Field(ge=0)] = _opt(
        0, "Stop after this many epochs without improvement (0: never).")
    top_k: Annotated[int, Field(ge=1)] = _opt(
        5, "k of the top-k validation accuracy, shown per epoch and in report.html (left out "
           "when k covers every class).")
    report: bool = _opt(True, "Write curves.png, confusion.png, per-class CSVs and "
                              "report.html at the end.")
    report_cams: bool = _opt(True, "Show a Grad-CAM overlay beside each of report.html's "
                                   "most confident mistakes.")
    img_size: Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE)] | None = _opt(
        None, "Input size (default: the model's).")
    resize: Annotated[str, one_of(RESIZE_MODES)] | None = _opt(
        None, "stretch: the whole image, aspect ignored; shorter: scale the shorter side "
              "and centre-crop (default: the weights' or the model's own).")
    augment: str = _opt(DEFAULT_AUGMENT, 'Augmentations, e.g. "flip,shear=0.2,zoom=0.2", '
                                         "or none.", "-a")
    seed: int = _opt(0, "Random seed.")
    device: str = _opt("auto", "auto, cpu or cuda.")
    out: str = _opt("runs", "Folder that holds run folders.", "-o")
    name: str | None = _opt(None, "Run folder name.")
    exist_ok: bool = _opt(False, "Reuse an existing run folder.")
    val_split: float = _opt(0.2, "Validation fraction when the data has no val folder.")
    cache: Annotated[str, one_of(CACHE_MODES)] = _opt(
        "memory", "Decoded-image cache: memory, disk or none.")
    threads: Annotated[int, Field(ge=1, le=MAX_THREADS)] | None = _opt(
        None, "Torch threads (default: the cores other processes leave idle, at least 1, "
              "counted again after each epoch).")
    workers: Annotated[int, Field(ge=0)] | None = _opt(
        None, "DataLoader worker processes (default: none for cached pixels, some for "
              "--cache none).")
    model_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Model options (--model-opt key=value)."})
    data_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Dataset options (--data-opt key=value)."})

    def __post_init__(self) -> None:
        # Unset optimisation options take the defaults of the recipe: from scratch, or
        # fine-tuning when training starts from --weights.
        if self.epochs is None:  # with a budget, the plan picks the count up to a cap
            self.epochs = BUDGET_MAX_EPOCHS if self.time else DEFAULT_EPOCHS
            self._epochs_unset = True  # not a field: with_overrides() reads it
        recipe = FINETUNE_DEFAULTS if self.weights else SCRATCH_DEFAULTS
        for name, value in recipe.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self, spec: ModelSpec) -> None:
        """Raise ConfigError for the first invalid option, with an example that works."""
        validate(_schema(), self, ConfigError, hint=lambda loc: _example(loc, spec), name=_flag)
        if self.time is not None:
            parse_duration(self.time)
        for flag, options in (("--model-opt", self.model_options),
                              ("--data-opt", self.data_options)):
            for key, value in options.items():
                check_finite_option(flag, key, value)
        if self.img_size is not None and self.img_size < spec.min_size:
            raise ConfigError(f"--img-size {self.img_size} is below {spec.name}'s minimum of "
                              f"{spec.min_size}.", f"For example: --img-size {spec.input_size[0]}.")
        recipe = FINETUNE_DEFAULTS if self.weights else SCRATCH_DEFAULTS
        if (self.warmup_epochs is not None and self.warmup_epochs > self.epochs / 2
                and self.warmup_epochs != recipe["warmup_epochs"]):
            # The schedule cuts it to half the run: a warm-up asked for is refused rather
            # than changed (the recipe's default is cut quietly, so one epoch still runs).
            raise ConfigError(f"--warmup-epochs {self.warmup_epochs:g} is more than half of "
                              f"--epochs {self.epochs}.",
                              f"For example: --warmup-epochs {self.epochs / 2:g}, or more "
                              "--epochs.")
        if self.workers is not None and self.workers > max_workers():
            raise ConfigError(f"--workers {self.workers} is above the limit of {max_workers()} "
                              "(4 per core, or 32).", "For example: --workers 4.")

    def to_toml(self) -> str:
        """The reproducible part of the config as TOML (run name and None values left out)."""
        values = {k: v for k, v in asdict(self).items()
                  if k not in RUN_IDENTITY and v is not None}
        return dump_toml(values, "imgcls train config. Reproduce this run: "
                                 "imgcls train --config <this file>")


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """``replace(config, **overrides)``, except that an epoch count the config only took by
    default is chosen again: ``fit(config, time="10m")`` plans up to 1000 epochs, not 10."""
    if getattr(config, "_epochs_unset", False) and "epochs" not in overrides:
        overrides = {"epochs": None, **overrides}
    return replace(config, **overrides)


@functools.cache
def _schema() -> TypeAdapter:
    return TypeAdapter(TrainConfig)


@functools.cache
def _field_schema(key: str) -> TypeAdapter:
    """One field's type without its bounds: what a config file's value must be."""
    return TypeAdapter(field_types()[key], config=ConfigDict(strict=True))


def _flag(loc: Location) -> str:
    return "--" + str(loc[0]).replace("_", "-")


def _example(loc: Location, spec: ModelSpec) -> str:
    """``For example: --lr 0.002`` (the from-scratch default) for the option at ``loc``."""
    key = str(loc[0])
    examples = {"img_size": spec.input_size[0], "workers": 0, "epochs": DEFAULT_EPOCHS,
                **SCRATCH_DEFAULTS}
    value = examples.get(key, getattr(TrainConfig, key, None))
    return f"For example: {_flag(loc)} {value}." if value is not None else "See --help."


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


def normalize_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Accept kebab-case keys, reject unknown ones with a suggestion, check types."""
    types = field_types()
    result: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in types:
            hint = did_you_mean(key, types, n=1).rstrip() or "See `imgcls train --help`."
            raise ConfigError(f"{source}: unknown option {raw_key!r}.", hint)
        result[key] = validate(_field_schema(key), value, ConfigError, f"{source}: ",
                               f"Fix {key} in {source}.", name=lambda _, key=key: key)
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
