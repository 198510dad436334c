"""Watching the training loss for NaN and Inf without stalling the GPU."""

from __future__ import annotations

import torch

from ..errors import NonFiniteLossError
from . import distributed
from .distributed import DistEnv


def nonfinite_error(loss: torch.Tensor, epoch: int, step: int) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"The training loss became {loss.item()} at epoch {epoch}, step {step}; training "
        "stopped. best.safetensors and last.pt still hold the last good weights.",
        "Lower --lr, add --grad-clip 1.0, check the data, or pass --skip-nonfinite to skip "
        "such steps.")


class LossWatch:
    """Stops training on a non-finite loss, or with ``skip`` skips that step.

    Skipping must know the answer before the step, which makes the host wait for
    the device every step. Stopping need not: the loss is checked one step late,
    while the next step's work is already queued, so a GPU never runs dry. The
    late step's update does no harm: checkpoints are written only after an epoch
    whose losses were all checked.
    """

    def __init__(self, skip: bool, env: DistEnv, epoch: int) -> None:
        self.skip, self.env, self.epoch = skip, env, epoch
        self.skipped = 0
        self._pending: tuple[torch.Tensor, int] | None = None

    def may_step(self, loss: torch.Tensor, step: int) -> bool:
        """Whether to take this step (False only when skipping a non-finite loss)."""
        if self.skip:
            finite = distributed.all_finite(loss, self.env)
            self.skipped += not finite
            return finite
        self.flush()
        self._pending = (loss.detach(), step)
        return True

    def flush(self) -> None:
        """Check the loss still unchecked; raises NonFiniteLossError if it was not finite."""
        if self._pending is not None:
            loss, step = self._pending
            self._pending = None
            if not distributed.all_finite(loss, self.env):
                raise nonfinite_error(loss, self.epoch, step)
