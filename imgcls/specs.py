"""Frozen descriptions of the components plugins register.

A ``Preprocess`` is built once per model and used by training, evaluation,
export checks and inference alike, so the four cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError, ManifestError
from .schema import MAX_MEAN, MIN_STD, Side, ValidationError, fixed, schema_error

ResizeMode = Literal["stretch", "shorter"]
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos"]


# Preprocessing constants in value_range's units (see imgcls.schema for the bounds).
Mean = Annotated[float, Field(ge=-MAX_MEAN, le=MAX_MEAN, allow_inf_nan=False)]
Std = Annotated[float, Field(ge=MIN_STD, le=MAX_MEAN, allow_inf_nan=False)]
CropFraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Size = fixed(Side, Side)
Means = fixed(Mean, Mean, Mean)
Stds = fixed(Std, Std, Std)
Range = fixed(Mean, Mean)
_PREPROCESS_HINT = "Fix the Preprocess given by the model's plugin."
_DAMAGED_HINT = "The model file is damaged or was not written by imgcls."


class Preprocess(BaseModel):
    """How raw pixels become a model input.

    The image is resized to size (height, width): stretch ignores the aspect
    ratio (as the Keras tutorial does); shorter scales the shorter side to
    size / crop_fraction and centre-crops. uint8 pixels then map linearly onto
    value_range and are normalised with (x - mean) / std per channel.
    """

    # Frozen (hashable, shared safely); unknown fields refused: a reader that ignored
    # a preprocessing step it does not know would feed the model the wrong pixels.
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    size: Size = (64, 64)
    resize: ResizeMode = "stretch"
    crop_fraction: CropFraction = 1.0
    interpolation: Interpolation = "bilinear"
    mean: Means = (0.0, 0.0, 0.0)
    std: Stds = (1.0, 1.0, 1.0)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    value_range: Range = (0.0, 1.0)

    def __init__(self, **values: Any) -> None:
        """A Preprocess from a plugin: a bad value is a ConfigError naming the field."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise schema_error(exc, ConfigError, "Invalid preprocessing: ",
                               _PREPROCESS_HINT) from exc

    # Only a direct call comes here: validation (from_dict, a manifest) must not, or its
    # errors would be ConfigErrors. pydantic marks its own __init__ the same way.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def with_size(self, size: int | tuple[int, int]) -> Preprocess:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        return Preprocess(**{**self.to_dict(), "size": (int(hw[0]), int(hw[1]))})

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
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        """A Preprocess from a manifest, whose values are checked as untrusted input."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise schema_error(exc, ManifestError, "Invalid preprocessing: ",
                               _DAMAGED_HINT) from exc


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


# A multiclass sample's label is a class index; a multilabel sample's is a sorted
# tuple of class indices, possibly empty (an image of none of the classes).
Sample = tuple[Path, int]
MultiLabelSample = tuple[Path, tuple[int, ...]]


@dataclass
class LoadedDataset:
    """What a dataset loader returns: class names in label order and samples.

    ``task`` is ``"multiclass"`` (labels are ints) or ``"multilabel"`` (labels are
    tuples of class indices).
    """

    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    task: str = "multiclass"


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
