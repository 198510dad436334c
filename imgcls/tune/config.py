"""TuneConfig: every ``imgcls tune`` option, and the small parsers they need (no optuna here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..train.config import TrainConfig

# --metric -> (epoch record key, optuna direction).
METRICS = {"accuracy": ("val_acc", "maximize"), "macro-f1": ("val_macro_f1", "maximize"),
           "loss": ("val_loss", "minimize"),
           "map": ("val_map", "maximize")}  # multi-label data
PRUNERS = ("median", "halving", "none")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


@dataclass
class TuneConfig:
    """What to tune: the base training config, the search space file and the study."""

    base: TrainConfig = field(default_factory=TrainConfig)
    trials: int = 30
    space: str | None = None
    metric: str = "accuracy"
    study: str | None = None
    storage: str | None = None
    timeout: float | None = None
    pruner: str = "median"
    seed: int | None = None

    @property
    def study_name(self) -> str:
        """--study, or model and data folder: the same command finds the same study again."""
        if self.study:
            return self.study
        data = Path(self.base.data.rstrip("/\\")).name or "data"
        return re.sub(r"[^\w.-]+", "-", f"{self.base.model}-{data}").strip("-")

    @property
    def tune_dir(self) -> Path:
        return Path(self.base.out) / f"tune-{self.study_name}"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.base.out) / 'tune.db'}"

    @property
    def metric_key(self) -> str:
        return METRICS[self.metric][0]

    @property
    def direction(self) -> str:
        return METRICS[self.metric][1]

    def validate(self) -> None:
        """Raise ConfigError for the first invalid tune option."""
        if self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}.",
                              "For example: --trials 30.")
        for flag, value, allowed in (("--metric", self.metric, tuple(METRICS)),
                                     ("--pruner", self.pruner, PRUNERS)):
            if value not in allowed:
                raise ConfigError(f"Unknown {flag} {value!r}; choose {', '.join(allowed)}.",
                                  f"For example: {flag} {allowed[0]}.")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError("--timeout must be positive.", "For example: --timeout 30m.")
        if not re.fullmatch(r"[\w.-]+", self.study_name):
            raise ConfigError(f"--study {self.study_name!r} is not a usable folder name.",
                              "Use letters, digits, '.', '_' and '-', e.g. --study cats-v2.")

    def identity(self) -> dict[str, Any]:
        """What a study must keep when it is resumed or shared (stored with the study)."""
        return {"model": self.base.model, "data": self.base.data, "metric": self.metric}


def parse_duration(text: str | None) -> float | None:
    """'90' or '90s' -> 90.0, '30m' -> 1800.0, '2h' -> 7200.0; None stays None."""
    if text is None:
        return None
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise ConfigError(f"--timeout {text!r} is not a duration.",
                          "Write seconds or a number with s, m, h or d, e.g. --timeout 30m.")
    return float(match[1]) * _UNITS[match[2] or "s"]
