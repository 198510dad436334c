"""tune(): run the study, then write its outputs; what ``imgcls tune`` calls."""

from __future__ import annotations

from collections.abc import Callable

from ..train.progress import Reporter
from .config import TuneConfig
from .report import TuneResult, finish
from .study import TrialSummary, run_study


def tune(config: TuneConfig, on_trial: Callable[[TrialSummary], None] | None = None,
         reporter: Reporter | None = None) -> TuneResult:
    """Run trials until ``config.trials`` have finished, then write runs/tune-NAME/.

    ``on_trial`` hears of each trial this process finishes; ``reporter`` receives
    each trial's training progress (silent by default).
    """
    return finish(run_study(config, on_trial, reporter), config)
