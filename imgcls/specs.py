"""Frozen descriptions of the components plugins register.

A ``Preprocess`` is built once per model and used by training, evaluation,
export checks and inference alike, so the four cannot drift apart.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ConfigError, ManifestError

ResizeMode = Literal["stretch", "shorter"]
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos"]


@dataclass(frozen=True)
class Preprocess:
    """How raw pixels become a model input.

    The image is resized to ``size`` (height, width): ``stretch`` ignores the
    aspect ratio (as the Keras tutorial does); ``shorter`` scales the shorter
    side to ``size / crop_fraction`` and centre-crops. uint8 pixels then map
    linearly onto ``value_range`` and are normalised with ``mean``/``std``.
    """

    size: tuple[int, int] = (64, 64)
    resize: ResizeMode = "stretch"
    crop_fraction: float = 1.0
    interpolation: Interpolation = "bilinear"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        problems = []
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 < v <= 65536
                   for v in self.size):
            problems.append(f"size must be two positive integers, got {self.size!r}")
        if self.resize not in ("stretch", "shorter"):
            problems.append(f"unknown resize mode {self.resize!r} (use stretch or shorter)")
        if self.interpolation not in ("nearest", "bilinear", "bicubic", "lanczos"):
            problems.append(f"unknown interpolation {self.interpolation!r}")
        if not 0.0 < self.crop_fraction <= 1.0:
            problems.append(f"crop_fraction must be in (0, 1], got {self.crop_fraction!r}")
        if self.channel_order not in ("RGB", "BGR"):
            problems.append(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        values = (*self.mean, *self.std, *self.value_range)
        if not all(np.isfinite(v) for v in values) or not all(v > 0 for v in self.std):
            problems.append("mean, std and value_range must be finite, std positive")
        if problems:
            raise ConfigError(f"Invalid preprocessing: {'; '.join(problems)}.",
                              "Fix the Preprocess given by the model's plugin.")

    def with_size(self, size: int | tuple[int, int]) -> Preprocess:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        return replace(self, size=(int(hw[0]), int(hw[1])))

    @property
    def flip_channels(self) -> bool:
        """True when the model wants BGR: decoded RGB pixels are reversed first."""
        return self.channel_order == "BGR"

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel float32 ``(scale, shift)``: ``input = pixel_uint8 * scale + shift``.

        ``value_range``, ``mean`` and ``std`` are folded in here once; the numpy
        path (:meth:`apply`) and the torch one (``imgcls.data.loader.NormaliseLayer``,
        used by training and the exported graph) both use these constants.
        """
        lo, hi = self.value_range
        std = np.asarray(self.std, dtype=np.float64)
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = (hi - lo) / 255.0 / std
        shift = (lo - mean) / std
        return scale.astype(np.float32), shift.astype(np.float32)

    def apply(self, batch: np.ndarray) -> np.ndarray:
        """uint8 NHWC RGB pixels -> float32 NCHW model input.

        The uint8 pixels (a quarter of the bytes) are transposed before one
        float32 multiply and an in-place add, so float memory is passed over
        as few times as possible.
        """
        if batch.ndim == 3:
            batch = batch[None]
        if self.flip_channels:
            batch = batch[..., ::-1]
        nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        scale, shift = self.affine()
        out = np.multiply(nchw, scale.reshape(1, 3, 1, 1), dtype=np.float32)
        out += shift.reshape(1, 3, 1, 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        """A Preprocess from a manifest, whose values are checked as untrusted input."""
        try:
            if not isinstance(data, Mapping):
                raise ValueError("not an object")
            return cls(
                size=_size(data["size"]),
                resize=_text(data, "resize", "stretch"),
                crop_fraction=_number(data.get("crop_fraction", 1.0), "crop_fraction"),
                interpolation=_text(data, "interpolation", "bilinear"),
                mean=_numbers(data.get("mean", (0.0, 0.0, 0.0)), 3, "mean", MAX_MEAN),
                std=_numbers(data.get("std", (1.0, 1.0, 1.0)), 3, "std", MAX_MEAN, MIN_STD),
                channel_order=_text(data, "channel_order", "RGB"),
                value_range=_numbers(data.get("value_range", (0.0, 1.0)), 2, "value_range",
                                     MAX_MEAN),
            )
        except KeyError as exc:
            raise ManifestError(f"Invalid preprocessing description: missing {exc}.",
                                "The model file is damaged or was not written by imgcls."
                                ) from exc
        except (TypeError, ValueError, ConfigError) as exc:
            raise ManifestError(
                f"Invalid preprocessing description: {exc}",
                "The model file is damaged or was not written by imgcls.",
            ) from exc


# Limits on a manifest's preprocessing: wide enough for any real model, narrow enough
# that an input buffer cannot exhaust memory and normalisation cannot overflow float32.
MIN_SIDE, MAX_SIDE = 8, 4096
MAX_MEAN = 1e4  # |mean|, std and |value_range| in the value_range's units
MIN_STD = 1e-4


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _size(value: Any) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"size must be [height, width], got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"size must be two integers, got {value!r}")
    if not all(MIN_SIDE <= v <= MAX_SIDE for v in value):
        raise ValueError(f"size sides must be in {MIN_SIDE}..{MAX_SIDE}, got {value!r}")
    return (value[0], value[1])


def _text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return value


def _number(value: Any, key: str) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value: Any, n: int, key: str, bound: float, least: float | None = None) -> tuple:
    if not isinstance(value, list | tuple) or len(value) != n:
        raise ValueError(f"{key} must be a list of {n} numbers, got {value!r}")
    numbers_ = tuple(_number(v, key) for v in value)
    if not all(abs(v) <= bound for v in numbers_):
        raise ValueError(f"{key} values must be within ±{bound:g}, got {value!r}")
    if least is not None and not all(v >= least for v in numbers_):
        raise ValueError(f"{key} values must be at least {least:g}, got {value!r}")
    return numbers_


@dataclass(frozen=True)
class WeightsSpec:
    """Pretrained weights a model can start from.

    imgcls applies them only when training starts (``imgcls.weights.apply_weights``);
    building a model (eval, export, infer, explain, resume) never loads them.
    ``url`` is a file that ``imgcls.weights.fetch`` downloads (http(s):// or file://),
    checked against ``sha256`` (a full hex digest or a prefix of one); ``hub_id`` names
    weights the plugin's own ``load`` fetches (the Hugging Face cache).
    ``load(model, path)`` puts the weights into the built model, whose head is already
    sized for the user's classes; None: ``imgcls.weights.load_state_dict_file``.
    """

    tag: str
    preprocess: Preprocess
    url: str | None = None
    sha256: str | None = None
    hub_id: str | None = None
    file_name: str | None = None
    categories: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    load: Callable[[Any, Path | None], None] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model architecture.

    ``build(num_classes, image_size=(h, w), **options)`` returns an
    ``nn.Module`` mapping float NCHW input to ``num_classes`` logits. imgcls
    always passes ``image_size``; builders that do not need it accept and
    ignore it.

    ``cam_layer`` names the module (dotted, as in ``model.named_modules()``) whose
    activations ``imgcls explain`` turns into class-activation maps, usually the last
    conv block; it may also be a function of the built model that returns the name (for
    architectures whose depth is an option). None: the model's last ``nn.Conv2d``.

    ``weights`` are the pretrained weights it can start from, the first being the
    default (``--weights imagenet`` or ``DEFAULT``); ``head`` names the classification
    layer (dotted) that fine-tuning treats apart; None: the last ``nn.Linear``.
    """

    name: str
    build: Callable[..., Any]
    preprocess: Preprocess
    description: str = ""
    min_size: int = 16
    cam_layer: str | Callable[[Any], str] | None = None
    weights: tuple[WeightsSpec, ...] = ()
    head: str | None = None

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocess.size


@dataclass(frozen=True)
class AugmentationSpec:
    """A training-time augmentation.

    ``build(**params)`` returns a callable. ``level="sample"`` callables take
    and return one uint8 CHW tensor; ``level="batch"`` callables take
    ``(images float NCHW, targets float N x classes)`` and return both.
    ``primary`` names the parameter set by the ``name=value`` shorthand.
    """

    name: str
    build: Callable[..., Callable]
    description: str = ""
    primary: str | None = None
    level: Literal["sample", "batch"] = "sample"


Sample = tuple[Path, int]


@dataclass
class LoadedDataset:
    """What a dataset loader returns: class names in label order and samples."""

    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset loader: ``load(source, **options) -> LoadedDataset``.

    ``source`` is what followed ``name:`` in ``--data`` (or a path), or None.
    """

    name: str
    load: Callable[..., LoadedDataset]
    description: str = ""


@dataclass(frozen=True)
class EngineSpec:
    """An inference engine: ``imgcls infer --engine NAME``.

    ``run(model, inputs, options, **engine_options)`` classifies ``inputs`` (the
    command line's: files, folders, globs, @lists, -) with the model file ``model``
    as ``options`` (an ``imgcls.infer.batch.InferOptions``) say and returns a
    ``Summary``. ``engine_options`` come from ``--engine-opt key=value``; ``options``
    names the keys the engine takes, each with its help. ``formats`` are the
    ``--format`` values it writes.
    """

    name: str
    run: Callable[..., Any]
    description: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    formats: tuple[str, ...] = ("csv", "jsonl")
