"""The plugin contract: every hook imgcls calls, with its exact arguments.

Each hook collects from every plugin (none is ``firstresult``). A plugin
implements a hook by defining a function with the same name and decorating
it with ``imgcls.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from .specs import AugmentationSpec, DatasetSpec, EngineSpec, ModelSpec

if TYPE_CHECKING:  # typing only: the hookspecs are core and import no stage (nor typer)
    import typer

    from .train.config import TrainConfig
    from .train.loop import FitResult

hookspec = pluggy.HookspecMarker("imgcls")


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register model architectures: call ``register(ModelSpec(...))`` once per model."""


@hookspec
def register_augmentations(register: Callable[[AugmentationSpec], None]) -> None:
    """Register augmentations: call ``register(AugmentationSpec(...))`` once per augmentation."""


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register dataset loaders: call ``register(DatasetSpec(...))`` once per loader."""


@hookspec
def register_engines(register: Callable[[EngineSpec], None]) -> None:
    """Register inference engines: call ``register(EngineSpec(...))`` once per engine."""


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add sub-commands to the ``imgcls`` typer app passed as ``cli``."""


@hookspec
def on_fit_start(config: TrainConfig, classes: list[str], run_dir: Path,
                 history: list[dict]) -> None:
    """Called once before the first training epoch, on rank 0 only.

    ``config`` is the resolved ``TrainConfig``; ``history`` holds the records of
    epochs already done when a run is resumed (empty otherwise), so a logger can
    make its output match them.
    """


@hookspec
def on_epoch_end(epoch: int, metrics: dict[str, float], run_dir: Path,
                 timing: dict[str, float]) -> None:
    """Called after each epoch's validation, on rank 0 only.

    ``metrics`` depend only on the data, config and seed (losses, accuracies,
    macro-F1, learning rate); ``timing`` holds ``epoch_seconds``,
    ``images_per_second`` and the seconds spent per stage of the step
    (``data_seconds``, ``augment_seconds``, ``normalise_seconds``, ``step_seconds``,
    ``bookkeeping_seconds``), which vary from run to run.
    """


@hookspec
def on_fit_end(result: FitResult) -> None:
    """Called once when training ends (also after early stopping), with the ``FitResult``."""
