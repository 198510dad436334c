"""Starting from pretrained weights: the run's preprocessing, the weights, the model, freezing.

Training applies ``--weights`` once, after building the model and before the first step;
the chosen weights' preprocessing becomes the run's. Building never loads weights.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ConfigError
from ..options import builder_options, unknown_options
from ..specs import ModelSpec, Preprocess
from ..weights import apply_weights, resolve_weights
from . import distributed
from .config import TrainConfig
from .distributed import DistEnv
from .model_checks import build_within_memory, check_output_shape
from .optim import freeze_backbone


def run_preprocess(spec: ModelSpec, config: TrainConfig) -> Preprocess:
    """The chosen weights' preprocessing (else the model's), with --img-size and --resize."""
    chosen = resolve_weights(spec, config.weights)[0] if config.weights else None
    base = chosen.preprocess if chosen is not None else spec.preprocess
    if config.resize == "stretch":
        # A centre crop can cut off what a label names (a multi-label image's second
        # object, a wide document): stretching keeps every pixel in view.
        base = base.model_copy(update={"resize": "stretch", "crop_fraction": 1.0})
    elif config.resize == "shorter":
        base = base.model_copy(update={"resize": "shorter"})
    return base.with_size(config.img_size) if config.img_size else base


def frozen_at(config: TrainConfig, epoch: int) -> bool:
    """Whether only the head trains in ``epoch`` (--freeze-backbone[-epochs])."""
    return config.freeze_backbone or epoch <= config.freeze_backbone_epochs


def load_pretrained(spec: ModelSpec, model: nn.Module, config: TrainConfig, env: DistEnv,
                    state: dict[str, Any] | None) -> dict[str, Any] | None:
    """Apply --weights once, before the first step; the manifest's record of them.

    A resumed run's weights are in its state already: nothing is fetched or loaded.
    Under torchrun rank 0 fetches first, so the others find the file in the cache.
    """
    if env.enabled and config.freeze_backbone_epochs:
        # DDP fixes the parameters it synchronises when it wraps the model.
        raise ConfigError("--freeze-backbone-epochs is not supported under torchrun.",
                          "Use --freeze-backbone for a head-only run, or train on one process.")
    if state is not None:
        return state.get("weights")
    if not config.weights:
        return None
    record = None
    if env.is_main:
        record = apply_weights(spec, model, config.weights, mirror=config.weights_mirror)
    distributed.barrier(env)
    if not env.is_main:
        record = apply_weights(spec, model, config.weights, progress=False,
                               mirror=config.weights_mirror)
    return record


def build_model(spec: ModelSpec, num_classes: int, preprocess: Preprocess,
                config: TrainConfig) -> nn.Module:
    """Build with --model-opt options (checked against the builder) and fine-tuning flags.

    Pretrained weights are not the builder's business: :func:`load_pretrained` applies them.
    """
    options = dict(config.model_options)
    unknown = unknown_options(spec.build, options)
    if unknown:
        names, _ = builder_options(spec.build)
        raise ConfigError(f"Model {spec.name!r} does not take {', '.join(unknown)} "
                          "(--model-opt).",
                          f"Its options are: {', '.join(names) or 'none'}.")
    try:
        model = build_within_memory(spec, num_classes, preprocess.size, options)
    except ValueError as exc:  # builders reject bad option values with ValueError
        raise ConfigError(f"Model {spec.name!r} rejected its options: {exc}",
                          "Check the --model-opt values against `imgcls models`.") from exc
    check_output_shape(model, spec, num_classes, preprocess.size)
    if config.freeze_backbone:
        freeze_backbone(model, spec.head)
    return model
