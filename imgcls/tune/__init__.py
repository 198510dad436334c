"""imgcls tune: hyper-parameter search on optuna (study, search space, report)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["Param", "TrialSummary", "TuneConfig", "TuneResult", "default_space",
           "parse_duration", "read_space", "space_to_toml", "tune"]

if TYPE_CHECKING:
    from .config import TuneConfig, parse_duration
    from .report import TuneResult
    from .run import tune
    from .space import Param, default_space, read_space, space_to_toml
    from .study import TrialSummary

# Lazy: `imgcls --help` reads the CLI without importing optuna or torch.
__getattr__ = lazy_exports(__name__, {
    "TuneConfig": ".config", "parse_duration": ".config", "TuneResult": ".report",
    "tune": ".run", "Param": ".space", "default_space": ".space", "read_space": ".space",
    "space_to_toml": ".space", "TrialSummary": ".study",
})
