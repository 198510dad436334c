"""TensorBoard logger for imgcls: one scalar per metric per epoch, in runs/<name>/tensorboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgcls import hookimpl

# One writer per run folder: fit() may run several times in one process.
_writers: dict[str, Any] = {}


def tag(name: str) -> str:
    """``val_acc`` -> ``val/acc``; ``lr`` -> ``opt/lr``; timing keys -> ``time/...``."""
    for prefix in ("train_", "val_"):
        if name.startswith(prefix):
            return f"{prefix[:-1]}/{name[len(prefix):]}"
    return f"opt/{name}" if name == "lr" else f"time/{name}"


@hookimpl
def on_fit_start(run_dir: Any, history: list[dict]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    if run_dir is None:
        return
    key = str(run_dir)
    if key in _writers:
        _writers.pop(key).close()
    # On resume, purge events logged after the last saved epoch (e.g. before a crash).
    _writers[key] = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"),
                                  purge_step=len(history) + 1 if history else None)


@hookimpl
def on_epoch_end(epoch: int, metrics: dict[str, float], run_dir: Any,
                 timing: dict[str, float]) -> None:
    writer = _writers.get(str(run_dir))
    if writer is None:
        return
    for name, value in (metrics | timing).items():
        writer.add_scalar(tag(name), value, global_step=epoch)
    writer.flush()  # an interrupted run keeps every epoch it finished


@hookimpl
def on_fit_end(result: Any) -> None:
    writer = _writers.pop(str(result.run_dir), None)
    if writer is not None:
        writer.close()
