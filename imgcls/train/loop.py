"""fit(): the training loop, readable top to bottom.

Sections: configuration, data, model, loop, outputs. Optimisation details live in optim.py,
mixed precision in precision.py, DDP in distributed.py, run-folder outputs in run_folder.py.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_resume_state, resume_path
from ..data.augment import Pipeline, build_pipeline
from ..data.loader import DeviceNormaliser
from ..errors import ConfigError, ImgclsError, NonFiniteLossError
from ..evaluate import batch_logits
from ..metrics import MetricAccumulator
from ..plugins import call_hook
from ..registry import get_model
from ..system import reuse_freed_memory
from . import distributed
from .budget import TimeBudget
from .config import TrainConfig, with_overrides
from .distributed import DistEnv
from .features import FeatureCache, epoch_features
from .feed import OnDevice, load_data, loader_workers, make_loaders, place_model
from .finetune import build_model, frozen_at, load_pretrained, run_preprocess
from .multilabel import (
    MultiLabelAccumulator,
    MultiLabelLoss,
    accumulate,
    correct,
    validation_accumulator,
)
from .nonfinite import LossWatch
from .optim import Stepper, TrainLoss, freeze_backbone, train_mode
from .precision import Precision, resolve_precision
from .progress import EpochPrinter, Reporter
from .run_folder import (
    RunFolder,
    check_optimizer_state,
    check_run_outputs,
    restoring,
    resumed_config,
    set_rng_state,
)
from .threads import ThreadPolicy
from .timing import StageClock

# Options that may change when a run is resumed: they do not change what is computed.
RESUME_OVERRIDES = ("epochs", "device", "workers", "cache", "threads")
# --select-metric -> (record key, +1 when higher is better, -1 when lower is).
SELECT_KEYS = {"accuracy": ("val_acc", 1), "macro-f1": ("val_macro_f1", 1),
               "loss": ("val_loss", -1), "map": ("val_map", 1)}


class TrainingInterrupted(ImgclsError):
    """Ctrl-C stopped training; the run folder holds a state to resume from."""

    def __init__(self, run_dir: Path, epoch: int) -> None:
        super().__init__(f"Training interrupted; {run_dir}/last.pt holds the state after "
                         f"epoch {epoch}.", f"Resume with: imgcls train --resume {run_dir}")
        self.run_dir = run_dir
        self.epoch = epoch


@dataclass
class FitResult:
    run_dir: Path
    best_path: Path
    best: dict[str, float]
    history: list[dict[str, float]]
    classes: list[str]
    skipped: list[tuple[Path, str]]
    stopped_early: bool = False
    report_path: Path | None = None
    plan: dict[str, Any] | None = None  # --time: the budget, the plan and its re-plans


@dataclass
class BestTracker:
    """Which epoch is best by ``--select-metric``, and whether patience has run out."""

    select_metric: str = "accuracy"
    patience: int = 0
    best: dict[str, float] = field(default_factory=dict)

    def update(self, record: dict[str, float]) -> bool:
        key, sign = SELECT_KEYS[self.select_metric]
        if not all(math.isfinite(record[k]) for k in (key, "val_loss") if k in record):
            return False  # a non-finite epoch is never best
        if self.best and sign * record[key] <= sign * self.best[key]:
            return False  # ties keep the earlier epoch
        self.best = dict(record)
        return True

    def out_of_patience(self, epoch: int) -> bool:
        return (self.patience > 0 and bool(self.best)
                and epoch - int(self.best["epoch"]) >= self.patience)


def seed_everything(seed: int) -> None:
    seed %= 2**32  # numpy's limit
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed augmentation and dropout from (seed, epoch, rank) only: resumes repeat exactly."""
    seed_everything(seed * 1_000_003 + epoch * 1_009 + rank)


# --------------------------------------------------------------------------- one epoch


def soft_targets(inputs: torch.Tensor, labels: torch.Tensor, augment: Pipeline,
                 loss_fn: TrainLoss) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch augmentations (mixup, cutmix) act on normalised images and one-hot targets."""
    if not augment.batch:
        return inputs, labels
    return augment.mix(inputs, loss_fn.one_hot(labels))


def train_one_epoch(s: Session, epoch: int, clock: StageClock,
                    features: FeatureCache | None = None) -> torch.Tensor:
    """One pass over the training data; returns [loss sum, correct, seen, skipped steps].
    With ``features`` (a frozen backbone's, see features.py) only the head runs.

    Each stage runs under ``clock`` (see timing.py). The running totals stay on the
    device: reading them every step (``.item()``) would make the host wait for the
    GPU on every batch; the loss is watched by :class:`LossWatch` for the same reason.
    """
    train_mode(s.model.module if s.env.enabled else s.model, frozen_at(s.config, epoch),
               s.outputs.spec.head)
    device = s.normalize.device
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    s.reporter.epoch_start(epoch, len(s.train_loader))
    watch = LossWatch(s.config.skip_nonfinite, s.env, epoch)
    model, batches = s.model, s.on_device.batches(s.train_loader, clock, s.normalize)
    if features is not None:
        model, batches = features.module(s.model), features.batches(s.train_loader, clock)
    for step, (inputs, labels) in enumerate(batches, 1):
        if s.budget is not None and not s.budget.go_on(s.stepper, step - 1, not s.env.enabled):
            break
        with clock("normalise"):
            labels = labels.to(device, non_blocking=True)
            inputs, targets = soft_targets(inputs, labels, s.augment, s.loss_fn)
        with clock("step"):
            with s.precision.autocast():
                logits = model(inputs)
                loss = s.loss_fn(logits.float(), targets)
            stepped = watch.may_step(loss, step)
            if stepped:
                s.stepper.step(loss)
        with clock("bookkeeping"):
            if not stepped:
                continue
            totals[0] += loss.detach().double() * len(labels)
            totals[1] += correct(logits, labels)
            totals[2] += len(labels)
            s.reporter.batch_end(epoch)
    watch.flush()
    totals[3] = watch.skipped
    return totals.cpu()


@torch.no_grad()
def validate(model: nn.Module, loader: Any, normalize: DeviceNormaliser, precision: Precision,
             num_classes: int, top_k: int, multilabel: list[str] | None = None
             ) -> MetricAccumulator | MultiLabelAccumulator:
    """Plain cross-entropy, top-1/top-k and confusion counts over this rank's share;
    with ``multilabel`` (the class names), BCE, mAP and F1 at thresholds chosen here."""
    metrics = validation_accumulator(num_classes, top_k, multilabel)
    for logits, labels in batch_logits(model, loader, normalize, precision):
        accumulate(metrics, logits, labels.to(normalize.device))
    return metrics


# --------------------------------------------------------------------------- fit


def fit(config: TrainConfig | None = None, reporter: Reporter | None = None, *,
        resume: str | Path | None = None, verbose: bool = True, **overrides: Any) -> FitResult:
    """Train a model as ``imgcls train`` does; ``resume`` continues a run folder exactly.

    Prints one line per epoch unless ``verbose=False`` or a ``reporter`` is given.
    """
    state = load_resume_state(resume) if resume is not None else None
    config = resolve_config(config, state, overrides)
    env, device = distributed.setup(config.device)
    if reporter is None or not env.is_main:
        reporter = EpochPrinter() if verbose and env.is_main else Reporter()
    if env.is_main and state is None:
        check_run_outputs(config)  # before any work: the run must not land on its inputs
    try:
        return _fit(config, env, device, reporter, state,
                    resume_path(resume).parent if resume is not None else None)
    finally:
        distributed.cleanup(env)


def resolve_config(config: TrainConfig | None, state: dict[str, Any] | None,
                   overrides: dict[str, Any]) -> TrainConfig:
    if state is None:
        return with_overrides(config, overrides) if config else TrainConfig(**overrides)
    changed = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if config is not None or changed:
        raise ConfigError(f"Options cannot change when resuming: {', '.join(changed) or 'config'}.",
                          f"A resumed run keeps its config; only {', '.join(RESUME_OVERRIDES)} "
                          "may be given.")
    return resumed_config(state, overrides)


@dataclass
class Session:
    """What the epoch loop works with; _fit() builds it once."""

    config: TrainConfig
    env: DistEnv
    reporter: Reporter
    precision: Precision
    model: nn.Module  # DDP-wrapped under torchrun
    stepper: Stepper
    loss_fn: TrainLoss
    normalize: DeviceNormaliser
    augment: Pipeline  # its batch-level steps run in the loop, on normalised images
    on_device: OnDevice  # moves (and maybe augments) each uint8 batch
    train_loader: Any
    val_loader: Any
    num_classes: int
    tracker: BestTracker
    history: list[dict[str, float]]
    outputs: RunFolder
    multilabel: list[str] | None = None  # the class names of a multi-label run
    features: FeatureCache | None = None  # a frozen backbone's, built on first use
    budget: TimeBudget | None = None  # --time: the plan decides the last epoch
    threads: ThreadPolicy = field(default_factory=ThreadPolicy)


def _fit(config: TrainConfig, env: DistEnv, device: torch.device, reporter: Reporter,
         state: dict[str, Any] | None, resume_dir: Path | None) -> FitResult:
    # configuration
    spec = get_model(config.model).spec
    config.validate(spec)
    seed_everything(config.seed)
    reuse_freed_memory()
    threads = ThreadPolicy(config.threads)  # its first look spans loading the data
    precision = resolve_precision(config.amp, config.amp_dtype, device, reporter.warn)
    preprocess = run_preprocess(spec, config)
    augment = build_pipeline(config.augment)

    dataset, train_images, val_images = load_data(config, preprocess, reporter, env)
    num_classes = len(dataset.classes)
    multilabel = dataset.classes if dataset.task == "multilabel" else None

    # model, optimisation, and the state of a resumed run
    model = build_model(spec, num_classes, preprocess, config)
    weights = load_pretrained(spec, model, config, env, state)
    on_device = place_model(model, device, augment, loader_workers(config, train_images),
                            config.batch_size * math.prod(preprocess.size))
    train_loader, val_loader = make_loaders(train_images, val_images, augment, on_device,
                                            config, env, num_classes)
    stepper = Stepper(model, config, len(train_loader), precision, spec.head)
    loss_fn = (MultiLabelLoss.build(config, train_images.labels, device) if multilabel
               else TrainLoss.build(config, train_images.labels, num_classes, device))
    tracker = BestTracker(config.select_metric, config.patience)
    budget = TimeBudget.begin(config, state, lambda value: distributed.broadcast_object(value, env))
    history: list[dict[str, float]] = []
    start = _restore(state, model, stepper, tracker, history) if state else 1
    outputs = RunFolder.create(config, env, resume_dir, spec, dataset, preprocess,
                               (train_images, val_images), weights, budget)
    threads.start()
    info = outputs.start_info(model, device, precision, env, start) | {"threads": str(threads)}
    reporter.start(info)
    if env.is_main:
        outputs.on_start(info, stepper, tracker, history, start - 1)
    session = Session(config, env, reporter, precision, distributed.wrap(model, env, device),
                      stepper, loss_fn, DeviceNormaliser(preprocess, device), augment,
                      on_device, train_loader, val_loader, num_classes, tracker, history, outputs,
                      multilabel, budget=budget, threads=threads)
    stopped_early = _run_loop(session, start)
    # outputs: reports from the best weights on rank 0; the result everywhere
    result = FitResult(outputs.run_dir, outputs.best_path, tracker.best, history,
                       dataset.classes, train_images.skipped + val_images.skipped, stopped_early,
                       plan=budget.summary(len(history)) if budget else None)
    return _finish(session, result, device)


def _finish(s: Session, result: FitResult, device: torch.device) -> FitResult:
    """The report from the best weights and on_fit_end on rank 0; then every rank ends."""
    if s.env.is_main and s.config.report:
        result.report_path = s.outputs.finish(device, s.precision, s.history)
    if s.env.is_main:
        call_hook("on_fit_end", result=result)
    distributed.barrier(s.env)
    s.reporter.end(result)
    return result


def _run_loop(s: Session, start: int) -> bool:
    """:func:`run_epochs`, with Ctrl-C and a full GPU turned into errors that say how to resume."""
    try:
        stopped_early = run_epochs(s, start)
    except KeyboardInterrupt:
        raise TrainingInterrupted(s.outputs.run_dir,
                                  len(s.history) and s.history[-1]["epoch"]) from None
    except torch.cuda.OutOfMemoryError as exc:
        batch = s.config.batch_size
        raise ImgclsError(
            f"The GPU ran out of memory at batch size {batch}.",
            f"Try --batch-size {max(1, batch // 2)}, --amp, or a smaller --img-size; resume "
            f"with --resume {s.outputs.run_dir} after the last good epoch.",
        ) from exc
    if s.budget is not None:
        s.reporter.note(s.budget.describe(len(s.history)))
    if not s.tracker.best:
        raise NonFiniteLossError("No epoch had finite validation metrics, so none was saved.",
                                 "Lower --lr, or train without --skip-nonfinite to stop at "
                                 "the first bad step.")
    return stopped_early


def run_epochs(s: Session, start: int) -> bool:
    """Train, validate, keep the best, save state, log; True when patience ran out."""
    epoch = start
    while (s.budget.steps_left(s.stepper.steps) > 0 if s.budget else epoch <= s.config.epochs):
        seed_epoch(s.config.seed, epoch, s.env.rank)
        s.train_loader.sampler.set_epoch(epoch)
        if s.config.freeze_backbone_epochs:
            freeze_backbone(s.model.module if s.env.enabled else s.model,
                            s.outputs.spec.head, frozen=frozen_at(s.config, epoch))
        started, clock = time.perf_counter(), StageClock()
        features = epoch_features(s, epoch)
        totals = train_one_epoch(s, epoch, clock, features)
        if totals[3] > 0:
            s.reporter.warn(f"epoch {epoch}: skipped {int(totals[3])} steps with a non-finite "
                            "loss (--skip-nonfinite).")
        seconds = time.perf_counter() - started
        val = (features.validate(s.stepper.eval_model(), s.precision, s.num_classes,
                                 s.config.top_k, s.multilabel) if features is not None else
               validate(s.stepper.eval_model(), s.val_loader, s.normalize, s.precision,
                        s.num_classes, s.config.top_k, s.multilabel))
        record = _epoch_record(epoch, totals, val, s.stepper, s.env, s.normalize.device)
        if s.budget is not None:  # after validation: the epoch's time includes it
            record["planned_epochs"] = s.budget.epoch_end(epoch, s.stepper, seconds)
        timing = {"epoch_seconds": seconds,
                  "images_per_second": totals[2].item() * s.env.world_size / seconds,
                  "threads": torch.get_num_threads(), **clock.as_timing()}
        s.history.append(record)
        is_best = s.tracker.update(record)
        s.outputs.thresholds = getattr(val, "thresholds", None)  # multi-label: chosen on val
        if s.env.is_main:
            s.outputs.on_epoch(epoch, record, timing, is_best, s.stepper, s.tracker, s.history)
        s.reporter.epoch_end(record | timing, is_best=is_best)
        s.threads.epoch_done(epoch, s.reporter.note)
        if s.tracker.out_of_patience(epoch):
            s.reporter.note(f"early stop: no improvement in {s.config.select_metric} for "
                            f"{s.config.patience} epochs (best: epoch {s.tracker.best['epoch']}).")
            return True
        epoch += 1
    return False


def _epoch_record(epoch: int, totals: torch.Tensor, val: MetricAccumulator, stepper: Stepper,
                  env: DistEnv, device: torch.device) -> dict[str, float]:
    """One epoch's metrics, summed over all ranks."""
    totals = distributed.all_reduce_sum(totals, env, device)
    val.load_tensor(distributed.all_reduce_sum(val.as_tensor(), env, device))
    seen = max(totals[2].item(), 1)
    return {"epoch": epoch, "train_loss": totals[0].item() / seen,
            "train_acc": totals[1].item() / seen, **val.compute("val_"), "lr": stepper.last_lr}


def _restore(state: dict[str, Any], model: nn.Module, stepper: Stepper, tracker: BestTracker,
             history: list[dict[str, float]]) -> int:
    """Load a resume state into the fresh objects; returns the first epoch still to run."""
    with restoring("model weights"):
        model.load_state_dict(state["model"])
    with restoring("optimizer and scheduler state"):
        stepper.load_state_dict(state["stepper"])
        check_optimizer_state(stepper.optimizer)
    key = SELECT_KEYS[tracker.select_metric][0]
    records = [state["best"]] if state["best"] else []
    with restoring("metrics history"):
        if not all({"epoch", key} <= set(r) for r in records + state["history"]):
            raise KeyError(key)
    tracker.best = dict(state["best"])
    history.extend(dict(record) for record in state["history"])
    with restoring("random number generator state"):
        set_rng_state(state["rng"])
    return int(state["epoch"]) + 1
