"""A time budget (``imgcls train --time 10m``): the epoch count and the LR schedule fitted
to it from the measured speed, re-planned at every epoch end.

Pure Python (no torch): config.py parses ``--time`` with it and the CLI reads the config
without importing torch.

The schedule is the configured one (warm-up, then cosine, one-cycle or step decay)
written in terms of *progress* through its two phases rather than of a fixed step
count. A re-plan keeps the progress reached so far and spreads what is left over the
new number of steps, so the learning rate never jumps, and the decay ends exactly on
the last planned step whatever the plan became.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

# With --time and no --epochs: the most epochs a plan may hold (a tiny data set in a long
# budget would otherwise plan thousands of one-second epochs).
BUDGET_MAX_EPOCHS = 1000
DEFAULT_EPOCHS = 10
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([dhms])")
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# onecycle's start and end as fractions of the peak (as torch's OneCycleLR).
ONECYCLE_START, ONECYCLE_END = 1 / 25, 1 / 25e4


def parse_duration(text: str) -> float:
    """``"90s"``, ``"10m"``, ``"1h30m"``, ``"1.5h"`` -> seconds; a bare number is seconds
    (as tune's ``--timeout``); anything else is a ConfigError."""
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d*)?", cleaned):
        cleaned += "s"
    parts = _PART.findall(cleaned)
    units = [unit for _, unit in parts]
    if (not parts or "".join(n + u for n, u in parts) != cleaned
            or len(set(units)) != len(units)):
        raise ConfigError(f"--time {text!r} is not a duration.",
                          "Give seconds, or numbers with d, h, m or s: e.g. --time 90s, "
                          "--time 10m or --time 1h30m.")
    seconds = sum(float(number) * _SECONDS[unit] for number, unit in parts)
    if not 0 < seconds <= 30 * 86400:
        raise ConfigError(f"--time {text!r} is not a usable budget.",
                          "Give more than 0 s and at most 30 days, e.g. --time 10m.")
    return seconds


# --------------------------------------------------------------------------- the schedule


def _progress(segment: list[float], step: float) -> float:
    """Where ``step`` lies in ``[start, start_progress, end]``: 0..1, linear, clamped."""
    start, done, end = segment
    if end <= start:
        return 1.0 if step >= start else done
    return min(1.0, max(0.0, done + (1.0 - done) * (step - start) / (end - start)))


class BudgetSchedule:
    """LambdaLR factor of the peak LR for step ``s``; :meth:`replan` refits it to new totals.

    A callable object rather than a closure: LambdaLR saves its ``__dict__`` (plain
    numbers and strings) with the scheduler's state, so a resumed run keeps its plan.
    """

    def __init__(self, scheduler: str, warmup_epochs: float, steps_per_epoch: int,
                 total_steps: int, step_size: int = 0, gamma: float = 0.1) -> None:
        self.scheduler = scheduler
        self.warmup_steps = round(warmup_epochs * steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.step_size = step_size
        self.gamma = gamma
        # A linear warm-up starts at 1/(W+1) of the peak, as the fixed-epoch schedule does.
        self.low = 1.0 / (self.warmup_steps + 1)
        rise_end = self._rise_end(total_steps)
        self.rise = [0.0, 0.0, float(rise_end)]
        self.decay = [float(rise_end), 0.0, float(total_steps - 1)]

    def _rise_end(self, total: int) -> int:
        """Warm-up steps (at most half the run); one-cycle without one rises over 30%."""
        if self.scheduler == "onecycle" and self.warmup_steps == 0:
            return max(1, round(0.3 * total))
        return min(total // 2, self.warmup_steps)

    def replan(self, step: int, total_steps: int) -> None:
        """From ``step`` on, fit what is left of the schedule into ``total_steps`` in all."""
        if step < self.rise[2]:
            end = max(step, self._rise_end(total_steps))
            self.rise = [float(step), _progress(self.rise, step), float(end)]
            self.decay = [float(end), 0.0, float(total_steps - 1)]
        else:
            self.decay = [float(step), _progress(self.decay, step), float(total_steps - 1)]

    def decay_done(self, step: int) -> bool:
        """True once ``step`` (the next step's index) is past the decay's last step."""
        return step > self.decay[2]

    def final_factor(self) -> float:
        return self._decay_factor(1.0, self.decay[2])

    def __call__(self, step: int) -> float:
        if step < self.rise[2]:
            p = _progress(self.rise, step)
            if self.scheduler == "onecycle":
                return ONECYCLE_START + (1 - ONECYCLE_START) * (1 - math.cos(math.pi * p)) / 2
            return self.low + (1.0 - self.low) * p
        return self._decay_factor(_progress(self.decay, step), step)

    def _decay_factor(self, q: float, step: float) -> float:
        if self.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * q))
        if self.scheduler == "onecycle":
            return ONECYCLE_END + (1 - ONECYCLE_END) * (1 + math.cos(math.pi * q)) / 2
        if self.scheduler == "step":
            if self.step_size:  # a decay every step_size epochs does not depend on the plan
                return self.gamma ** (int(step) // self.steps_per_epoch // self.step_size)
            return self.gamma ** min(2, math.floor(3 * q))  # at a third and two thirds
        return 1.0

    def check(self) -> None:
        """A restored state must be numbers in order (a resume state is data from a file)."""
        for segment in (self.rise, self.decay):
            if (len(segment) != 3 or not all(isinstance(v, (int, float)) for v in segment)
                    or not 0 <= segment[1] <= 1):
                raise ValueError("schedule segment")
        if self.steps_per_epoch < 1 or self.scheduler not in ("cosine", "onecycle", "step",
                                                              "none"):
            raise ValueError("schedule")


# --------------------------------------------------------------------------- the plan


@dataclass
class BudgetPlan:
    """How many optimiser steps fit the budget, from the measured speed: whole epochs,
    then a shortened last one if part of an epoch's time is left. Each epoch-end change
    of the plan is kept in ``replans``; within an epoch it is refitted as the step time
    moves (``adjustments`` counts those)."""

    seconds: float  # the budget
    cap: int  # --epochs: the plan never goes past it
    steps_per_epoch: int
    planned_steps: int  # the schedule's decay ends on the step before this one
    spent: float = 0.0  # budget seconds used up to the last epoch end
    step_seconds: float = 0.0  # the latest epoch's training seconds a step
    other_seconds: float = -1.0  # its validating and saving seconds (-1: not measured yet)
    replans: list[dict[str, float]] = field(default_factory=list)
    adjustments: int = 0
    decay_completed: bool = False
    last_steps: int = 0  # steps done when the latest epoch ended

    @classmethod
    def start(cls, seconds: float, cap: int, steps_per_epoch: int) -> BudgetPlan:
        return cls(seconds, cap, steps_per_epoch, cap * steps_per_epoch)

    @property
    def planned_epochs(self) -> float:
        """Epochs in the plan; a fraction when the last epoch is cut short."""
        return round(self.planned_steps / self.steps_per_epoch, 3)

    def fit(self, steps: int, into_epoch: int, left: float, decay_done: bool) -> int:
        """Total steps that end the run when ``left`` seconds are left, ``steps`` done,
        ``into_epoch`` of them in the current epoch: the rest of this epoch, whole epochs,
        then the steps that fit with the last epoch's validation; never past the cap, and
        nothing more once the schedule has finished (it would train at its final LR)."""
        if decay_done:
            return steps
        step, other, per_epoch = self.step_seconds, self.other_seconds, self.steps_per_epoch
        rest_of_epoch = per_epoch - into_epoch
        if left < rest_of_epoch * step + other:  # this epoch is the last one, cut short
            planned = steps + min(rest_of_epoch, max(0, math.floor((left - other) / step)))
        else:
            left -= rest_of_epoch * step + other
            full = math.floor(left / (per_epoch * step + other))
            left -= full * (per_epoch * step + other)
            planned = (steps + rest_of_epoch + full * per_epoch
                       + max(0, math.floor((left - other) / step)))
        return min(self.cap * per_epoch, planned)

    def after_epoch(self, epoch: int, steps: int, spent: float, times: tuple[float, float],
                    decay_done: bool) -> int:
        """Measure the epoch that ended ``spent`` seconds into the budget (``times``: its
        training seconds, and its seconds since the previous epoch ended) and re-plan."""
        train, cycle = times
        self.spent = spent
        self.step_seconds = max(train / max(1, steps - self.last_steps), 1e-9)
        self.other_seconds = max(0.0, cycle - train)
        self.last_steps = steps
        planned = self.fit(steps, 0, self.seconds - spent, decay_done)
        if not decay_done and planned <= steps:
            # The time ran out before the decay did: one more step (and validation)
            # finishes it, a small overrun for the model the schedule was meant to give.
            planned = steps + 1
        if planned != self.planned_steps or not self.replans:
            self.planned_steps = planned
            self.replans.append({"epoch": epoch, "planned_epochs": self.planned_epochs,
                                 "step_seconds": round(self.step_seconds, 5)})
        return planned

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BudgetPlan:
        plan = cls(**state)
        numbers = [plan.seconds, plan.spent, plan.step_seconds, plan.other_seconds]
        if (not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers)
                or not all(isinstance(v, int) and v >= 0 for v in
                           (plan.cap - 1, plan.steps_per_epoch - 1, plan.planned_steps,
                            plan.last_steps, plan.adjustments))):
            raise ValueError("time budget state")
        return plan

    def summary(self, epochs_run: int) -> dict[str, Any]:
        """What config.json, FitResult.plan and the report say about the budget."""
        return {"budget_seconds": self.seconds, "used_seconds": round(self.spent, 3),
                "epoch_cap": self.cap, "planned_epochs": self.planned_epochs,
                "epochs_run": epochs_run, "replans": list(self.replans),
                "adjustments_within_epochs": self.adjustments,
                "decay_completed": self.decay_completed}

    def describe(self, epochs_run: int) -> str:
        """One line for the console and the report."""
        first = self.replans[0]["planned_epochs"] if self.replans else self.planned_epochs
        decay = "" if self.decay_completed else "; the LR decay did not finish"
        return (f"time budget {format_seconds(self.seconds)}: {epochs_run} epoch"
                f"{'s' if epochs_run != 1 else ''} in {format_seconds(self.spent)} (planned "
                f"{first:g} after epoch 1, re-planned {max(0, len(self.replans) - 1)} "
                f"times){decay}")


def format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


# --------------------------------------------------------------------------- the loop's side


class TimeBudget:
    """The budget's clock and plan, and what fit() does with them at each epoch end."""

    def __init__(self, seconds: float, cap: int, saved: dict[str, Any] | None,
                 agree: Callable[[Any], Any]) -> None:
        self.seconds, self.cap, self.saved = seconds, cap, saved
        self.agree = agree  # rank 0's figures on every rank (under torchrun)
        self.plan: BudgetPlan | None = None  # made when the steps per epoch are known
        self.started = self.mark = self.train_mark = 0.0  # set as the epochs start
        self.step_mark = 0.0  # the previous epoch's seconds a step

    @classmethod
    def begin(cls, config: Any, state: dict[str, Any] | None,
              agree: Callable[[Any], Any] = lambda value: value) -> TimeBudget | None:
        """The budget of ``config.time`` (None without one); a resume continues its own."""
        if not config.time:
            return None
        saved = (state or {}).get("budget")
        if saved is not None and saved.get("planned_steps", 0) <= saved.get("last_steps", -1):
            raise ConfigError(f"The run is complete: its time budget's plan of "
                              f"{state['epoch']} epochs is done, so there is nothing to "
                              "resume.", "A finished schedule cannot be stretched: start a "
                              "new run for more training.")
        return cls(parse_duration(config.time), config.epochs, saved, agree)

    def _start(self, steps_per_epoch: int) -> None:
        """The first step is about to run: the budget's clock starts (a resume's goes on
        from where the saved epoch left it). Loading data before and the report after the
        training are not in the budget."""
        if self.saved is None:
            self.plan = BudgetPlan.start(self.seconds, self.cap, steps_per_epoch)
        else:
            try:
                self.plan = BudgetPlan.from_state(self.saved)
            except (TypeError, ValueError) as exc:
                raise ConfigError("The resume state's time budget is damaged.",
                                  "Start a new run.") from exc
            self.plan.cap = self.cap  # --epochs may be given with --resume
        self.mark = time.perf_counter()
        self.started = self.mark - self.plan.spent

    def epochs(self) -> int:
        """Epochs the plan holds (a part epoch counts); the cap before the first is timed."""
        plan = self.plan.state() if self.plan is not None else self.saved
        if not plan:
            return self.cap
        return math.ceil(plan["planned_steps"] / plan["steps_per_epoch"])

    def steps_left(self, steps: int) -> int:
        """Steps the plan still holds after ``steps`` (before the first: some)."""
        return self.plan.planned_steps - steps if self.plan is not None else 1

    def go_on(self, stepper: Any, into_epoch: int, refit: bool) -> bool:
        """Before each step: whether the plan holds another.

        In the last two epochs of the plan, the plan follows the step time as it goes
        (this epoch's and the previous one's together), so the run ends on time even when
        the machine slows down or speeds up there. Earlier epochs wait for their end: a
        passing slowdown would otherwise end the schedule early for good. Not under
        torchrun (``refit`` False): ranks would have to agree on every step.
        """
        if self.plan is None:
            self._start(stepper.schedule.steps_per_epoch)
        now, plan, steps = time.perf_counter(), self.plan, stepper.steps
        if into_epoch == 0:
            self.train_mark, self.step_mark = now, plan.step_seconds
        elif (refit and plan.other_seconds >= 0
              and plan.planned_steps <= plan.last_steps + 2 * plan.steps_per_epoch):
            plan.step_seconds = max((self.step_mark * plan.steps_per_epoch + now
                                     - self.train_mark) / (plan.steps_per_epoch + into_epoch),
                                    1e-9)
            done = stepper.schedule.decay_done(steps)
            # A schedule part-way through its decay gets one more step to finish it.
            planned = max(plan.fit(steps, into_epoch, self.seconds - (now - self.started),
                                   done), steps + (not done))
            if planned != plan.planned_steps:
                plan.planned_steps = planned
                plan.adjustments += 1
                stepper.replan(planned)
        return self.steps_left(steps) > 0

    def epoch_end(self, epoch: int, stepper: Any, train_seconds: float) -> float:
        """Re-plan from the time used so far (rank 0's figures on every rank) and fit the
        schedule's rest to it; returns the planned epochs."""
        assert self.plan is not None
        now = time.perf_counter()
        spent, train, cycle = self.agree((now - self.started, train_seconds, now - self.mark))
        self.mark = now
        done = stepper.schedule.decay_done(stepper.steps)
        planned = self.plan.after_epoch(epoch, stepper.steps, spent, (train, cycle), done)
        if planned <= stepper.steps:  # the run ends here
            self.plan.decay_completed = done
        else:
            stepper.replan(planned)
        return self.plan.planned_epochs

    def state(self) -> dict[str, Any] | None:
        """For last.pt (None before the first epoch: a resume then starts afresh)."""
        return self.plan.state() if self.plan is not None else None

    def summary(self, epochs_run: int) -> dict[str, Any]:
        if self.plan is None:
            return {"budget_seconds": self.seconds, "epoch_cap": self.cap}
        return self.plan.summary(epochs_run)

    def describe(self, epochs_run: int) -> str:
        return self.plan.describe(epochs_run) if self.plan is not None else ""
