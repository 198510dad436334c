"""Training: the fit() loop, its config, optimiser, precision, DDP, run folder and progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["FitResult", "Reporter", "RunFolder", "TrainConfig", "TrainingInterrupted", "fit"]

if TYPE_CHECKING:
    from .config import TrainConfig
    from .loop import FitResult, TrainingInterrupted, fit
    from .progress import Reporter
    from .run_folder import RunFolder

# Lazy: the CLI reads TrainConfig to build its options without importing torch.
__getattr__ = lazy_exports(__name__, {
    "fit": ".loop", "FitResult": ".loop", "TrainingInterrupted": ".loop",
    "TrainConfig": ".config", "Reporter": ".progress", "RunFolder": ".run_folder",
})
