"""The run folder: config, best checkpoint, resume state, logger events, final report.

Only rank 0 writes here; fit() calls it at the start, after each epoch and at the end.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import (
    RESUME_FILE,
    load_checkpoint,
    save_checkpoint,
    save_resume_state,
)
from ..data import fingerprint
from ..data.cache import DecodedImages
from ..errors import CheckpointError, ConfigError
from ..evaluate import Evaluation, predict_decoded, write_evaluation
from ..explain.gallery import Overlays, mistake_overlays
from ..io import atomic_write_text, clean_stale_temp_files
from ..manifest import make_manifest
from ..outputs import check_out_dir, check_run_name, input_paths
from ..plugins import call_hook
from ..report import GALLERY_SIZE, plot_curves, write_report
from ..specs import LoadedDataset, ModelSpec, Preprocess
from . import distributed
from .config import TrainConfig, config_from_dict
from .distributed import DistEnv
from .optim import class_counts
from .precision import Precision


def folder_name(model: str) -> str:
    """A model name as one folder name: `timm/convnext_nano.in12k` -> `timm-convnext_nano.in12k`.

    Registered names have at most the namespace's `/` (imgcls.registry.NAME_PATTERN).
    """
    return model.replace("/", "-").replace("\\", "-")


def planned_run_dir(out: str, name: str, exist_ok: bool, explicit: bool) -> Path:
    """runs/<name>, or runs/<name>-2, -3 ... when the name was not given explicitly."""
    if explicit:
        check_run_name("--name", name)
    base = Path(out)
    run_dir = base / name
    if run_dir.exists() and not exist_ok:
        if explicit:
            raise ConfigError(f"Run folder {run_dir} already exists.",
                              "Choose another --name, or pass --exist-ok to reuse it.")
        n = 2
        while (base / f"{name}-{n}").exists():
            n += 1
        run_dir = base / f"{name}-{n}"
    return run_dir


RUN_FILES = ("best.safetensors", RESUME_FILE, "config.toml", "config.json", "metrics.jsonl",
             "metrics.csv", "report.html")


def check_run_outputs(config: TrainConfig) -> None:
    """The run folder must stay in --out-dir, off the data and any weights it reads."""
    run_dir = planned_run_dir(config.out, config.name or folder_name(config.model), config.exist_ok,
                              explicit=config.name is not None)
    files, folders = input_paths([config.data, config.weights])
    check_out_dir("run folder (--out-dir/--name)", run_dir, files, folders,
                  writes=RUN_FILES)


def make_run_dir(out: str, name: str, exist_ok: bool, explicit: bool) -> Path:
    """Create runs/<name> (see planned_run_dir)."""
    run_dir = planned_run_dir(out, name, exist_ok, explicit)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create run folder {run_dir}: {exc.strerror}.",
                          "Pass a writable --out-dir folder.") from exc
    return run_dir


def rng_state() -> dict[str, Any]:
    """Every global RNG, as tensors and plain values (loadable with weights_only=True)."""
    version, mt_state, gauss = random.getstate()
    numpy_state = np.random.get_state()
    return {"python": [version, list(mt_state), gauss], "torch": torch.get_rng_state(),
            "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                      *numpy_state[2:]],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    # A state saved on another machine may hold no or other GPUs: keep what is here then.
    if state["cuda"] and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# How resume errors name the file: fit() checks the state, not its path.
RESUME_STATE = "The resume state (last.pt)"
_DAMAGED = "The file is damaged or from another imgcls version; start a new run."


def resumed_config(state: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """The saved config (checked as strictly as a config file) with the allowed overrides.

    ``state`` comes from ``load_resume_state``, which checked every other field.
    """
    try:
        config = replace(config_from_dict(state["config"], f"{RESUME_STATE} config"),
                         **overrides)
    except ConfigError as exc:
        raise CheckpointError(f"{RESUME_STATE} is not usable: {exc.message}", _DAMAGED) from exc
    if state["epoch"] >= config.epochs:
        # e.g. killed while writing the report: there is no epoch left to resume at.
        raise ConfigError(f"The run is complete: it already trained {state['epoch']} of "
                          f"{config.epochs} epochs, so there is nothing to resume.",
                          f"To train longer, pass more epochs, e.g. --epochs "
                          f"{state['epoch'] + config.epochs}.")
    return config


@contextlib.contextmanager
def restoring(what: str) -> Iterator[None]:
    """Turn a resume-state part that does not fit the fresh objects into one CheckpointError."""
    try:
        yield
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{RESUME_STATE} does not match this run: its {what} cannot be "
                              "restored.", _DAMAGED) from exc


def check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Optimizer moments must have their parameter's shape, or the first step fails."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for value in optimizer.state.get(param, {}).values():
                if (isinstance(value, torch.Tensor) and value.dim() > 0
                        and value.shape != param.shape):
                    raise ValueError("optimizer state shape mismatch")


def recipe_note(config: TrainConfig, weights: dict[str, Any] | None) -> str:
    """The run summary's line on fine-tuning: the weights and the settings used with them."""
    if not config.weights:
        return ""
    settings = (f"lr {config.lr:g}, {config.optimizer}, warm-up {config.warmup_epochs:g} "
                f"epochs, label smoothing {config.label_smoothing:g}")
    source = (weights or {}).get("tag") or (weights or {}).get("file") or config.weights
    frozen = ("head only" if config.freeze_backbone else
              f"head only for {config.freeze_backbone_epochs} epochs, then everything"
              if config.freeze_backbone_epochs else "everything trains")
    return (f"fine-tuning from {source}: {settings}, backbone lr x{config.backbone_lr_scale:g}, "
            f"{frozen}")


def _holds_files(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:  # unreadable: creating the run folder there reports it
        return False


def run_folder_note(asked: Path, run_dir: Path, existed: bool) -> str:
    """Say so when the run does not land in the folder asked for, or reuses a full one:
    later commands must name the folder this run wrote."""
    if run_dir != asked:
        return (f"{asked} exists already, so this run writes {run_dir}; name runs with "
                "--name to know where they land")
    if existed:
        return f"{run_dir} exists already and is reused (--exist-ok): its files are replaced"
    return ""


@dataclass
class RunFolder:
    run_dir: Path
    config: TrainConfig
    spec: ModelSpec
    dataset: LoadedDataset
    preprocess: Preprocess
    images: tuple[DecodedImages, DecodedImages]
    started: float
    weights: dict[str, Any] | None = None  # where --weights came from (manifest, state)
    thresholds: list[float] | None = None  # multi-label: chosen on val in the latest epoch
    budget: Any = None  # --time: the TimeBudget (budget.py), kept in last.pt and config.json
    resolved: dict[str, Any] = field(default_factory=dict)  # config.json's contents
    note: str = ""  # the run folder is not the one asked for, or an existing one is reused

    @classmethod
    def create(cls, config: TrainConfig, env: DistEnv, resume_dir: Path | None, spec: ModelSpec,
               dataset: LoadedDataset, preprocess: Preprocess,
               images: tuple[DecodedImages, DecodedImages],
               weights: dict[str, Any] | None = None, budget: Any = None) -> RunFolder:
        run_dir, note = resume_dir, ""
        if env.is_main and run_dir is None:
            asked = Path(config.out) / (config.name or folder_name(config.model))
            existed = _holds_files(asked)
            run_dir = make_run_dir(config.out, asked.name, config.exist_ok,
                                   explicit=config.name is not None)
            note = run_folder_note(asked, run_dir, existed)
        elif env.is_main:  # a run killed mid-write left temp files nobody else will remove
            clean_stale_temp_files(run_dir)
        run_dir = Path(str(distributed.broadcast_object(str(run_dir), env)))
        return cls(run_dir, config, spec, dataset, preprocess, images, time.perf_counter(),
                   weights, budget=budget, note=note)

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.safetensors"

    @property
    def last_path(self) -> Path:
        return self.run_dir / RESUME_FILE

    def class_counts(self) -> dict[str, list[int]]:
        n = len(self.dataset.classes)
        return {split: class_counts(images.labels, n).tolist()
                for split, images in zip(("train", "val"), self.images, strict=True)}

    def start_info(self, model: nn.Module, device: torch.device, precision: Precision,
                   env: DistEnv, start_epoch: int) -> dict[str, Any]:
        """What the reporter shows before training: model, data, class histogram, where."""
        config = self.config
        return {"run_dir": self.run_dir, "run_note": self.note, "device": device,
                "classes": self.dataset.classes,
                "train": len(self.images[0]), "val": len(self.images[1]), "model": self.spec.name,
                "params": sum(p.numel() for p in model.parameters()),
                "notes": self.dataset.notes + self._label_set_note(),
                "class_counts": self.class_counts(),
                "precision": precision.name, "world_size": env.world_size,
                "start_epoch": start_epoch,
                "epochs": self.budget.epochs() if self.budget is not None else config.epochs,
                "balanced": config.class_weights != "none" or config.sampler != "shuffle",
                "recipe": recipe_note(config, self.weights)}

    def _label_set_note(self) -> list[str]:
        """Multi-label: how many training images carry no label, and several."""
        if self.dataset.task != "multilabel":
            return []
        per_image = np.asarray(self.images[0].labels).sum(1)
        return [f"multi-label: {int((per_image == 0).sum())} of {len(per_image)} training "
                f"images have no label, {int((per_image > 1).sum())} have several; the "
                "histogram counts each image once per label"]

    # ----------------------------------------------------------------------- events

    def on_start(self, info: dict[str, Any], stepper: Any, tracker: Any,
                 history: list[dict[str, float]], epochs_done: int) -> None:
        """Save the config, tell loggers, and keep a state to resume even from epoch 0.

        config.toml is what to train (reproducible anywhere); config.json adds what
        this run resolved it to (device, precision, processes, run folder).
        """
        self.resolved = asdict(self.config) | {
            "device": str(info["device"]), "precision": info["precision"],
            "world_size": info["world_size"], "run_dir": str(self.run_dir),
            "requested_device": self.config.device}
        atomic_write_text(self.run_dir / "config.toml", self.config.to_toml())
        self._write_resolved(epochs_done)
        call_hook("on_fit_start", config=self.config, classes=self.dataset.classes,
                  run_dir=self.run_dir, history=list(history))
        if epochs_done == 0:
            self._save_state(0, stepper, tracker, history)

    def on_epoch(self, epoch: int, record: dict[str, float], timing: dict[str, float],
                 is_best: bool, stepper: Any, tracker: Any,
                 history: list[dict[str, float]]) -> None:
        metrics = {k: v for k, v in record.items() if k != "epoch"}
        if is_best:
            save_checkpoint(self.best_path, stepper.eval_model(), self.manifest(tracker.best))
        self._save_state(epoch, stepper, tracker, history)
        if self.budget is not None:
            self._write_resolved(epoch)
        call_hook("on_epoch_end", epoch=epoch, metrics=metrics, run_dir=self.run_dir,
                  timing=timing)

    def _write_resolved(self, epochs_done: int) -> None:
        """config.json; with --time, the plan so far as ``time_budget`` (budget.py)."""
        plan = ({"time_budget": self.budget.summary(epochs_done)} if self.budget is not None
                else {})
        atomic_write_text(self.run_dir / "config.json",
                          json.dumps(self.resolved | plan, indent=2))

    def _save_state(self, epoch: int, stepper: Any, tracker: Any,
                    history: list[dict[str, float]]) -> None:
        saved = self.budget.state() if self.budget is not None else None
        plan = {"budget": saved} if saved is not None else {}
        save_resume_state(self.last_path, {
            "epoch": epoch, "config": asdict(self.config), "classes": self.dataset.classes,
            "model": stepper.model.state_dict(), "stepper": stepper.state_dict(),
            "best": dict(tracker.best), "history": [dict(r) for r in history],
            "rng": rng_state(), "weights": self.weights, **plan})

    def manifest(self, best: dict[str, float]) -> dict[str, Any]:
        config, (train, val) = self.config, self.images
        data_path = Path(config.data)
        data_ref = str(data_path.resolve()) if data_path.exists() else config.data
        data_info = {"data": data_ref, "options": config.data_options,
                     "source": self.dataset.source or config.data, "train": len(train),
                     "val": len(val), "fingerprint": fingerprint(self.dataset.train)}
        training = {"best": best, "epochs": config.epochs, "augment": config.augment,
                    "seed": config.seed, "optimizer": config.optimizer,
                    "scheduler": config.scheduler, "ema": config.ema}
        if self.weights:
            training["weights"] = self.weights
        multilabel = self.dataset.task == "multilabel"
        return make_manifest(self.spec.name, config.model_options, self.dataset.classes,
                             self.preprocess, training=training, dataset=data_info,
                             task=self.dataset.task,
                             thresholds=(self.thresholds or [0.5] * len(self.dataset.classes))
                             if multilabel else None)

    # ----------------------------------------------------------------------- the end

    def finish(self, device: torch.device, precision: Precision,
               history: list[dict[str, float]]) -> Path:
        """Evaluate the best weights on the validation images; write plots and report.html."""
        val_images = self.images[1]
        loaded = load_checkpoint(self.best_path)
        model = loaded.model.to(device)
        probs = predict_decoded(model, val_images, self.preprocess, device, precision=precision,
                                multilabel=self.dataset.task == "multilabel")
        if self.dataset.task == "multilabel":
            from .report_multilabel import finish_multilabel

            return finish_multilabel(self, loaded.manifest, model, probs, history, device)
        evaluation = Evaluation(self.dataset.classes, [str(p) for p in val_images.paths],
                                val_images.labels, probs, self.config.top_k)
        write_evaluation(evaluation, self.run_dir)
        curves = plot_curves(history, self.run_dir / "curves.png")
        summary = evaluation.summary()
        headline = self._headline(summary, history)
        mistakes = evaluation.misclassified()
        cams = self._cams(model, mistakes[:GALLERY_SIZE], device)
        return write_report(
            self.run_dir / "report.html", title=f"imgcls run {self.run_dir.name}",
            headline=headline, curves_png=curves.read_bytes(),
            confusion_png=(self.run_dir / "confusion.png").read_bytes(),
            per_class=summary["per_class"], mistakes=mistakes,
            config=self.report_options(device),
            cams=dict(zip((row["path"] for row in mistakes), cams.images, strict=False)),
            cam_note=cams.note)

    def report_options(self, device: torch.device) -> dict[str, Any]:
        """The options as report.html lists them: the device the run used, not ``auto``."""
        options = {k: v for k, v in asdict(self.config).items() if v not in (None, {})}
        if options.get("device") == "auto":
            options["device"] = f"{device.type} (auto)"
        return options

    def _cams(self, model: nn.Module, mistakes: list[dict[str, Any]],
              device: torch.device) -> Overlays:
        """Grad-CAM overlays of the gallery's mistakes, for the class each was taken for."""
        if not self.config.report_cams or not mistakes:
            return Overlays()
        val_images = self.images[1]
        index = {str(path): i for i, path in enumerate(val_images.paths)}
        pixels, _ = val_images.take([index[row["path"]] for row in mistakes])
        predicted = [self.dataset.classes.index(row["predicted"]) for row in mistakes]
        return mistake_overlays(model, self.spec, self.preprocess, pixels, predicted, device)

    def _headline(self, summary: dict[str, Any], history: list[dict[str, float]]) -> dict:
        headline = {"model": self.spec.name, "data": self.config.data,
                    "epochs run": str(len(history)),
                    "validation accuracy": f"{summary['accuracy']:.2%}",
                    "macro-F1": f"{summary['macro_f1']:.3f}"}
        for key, value in summary.items():
            if key.startswith("top") and key.endswith("_accuracy"):
                headline[key.replace("_", " ")] = f"{value:.2%}"
        headline["train time"] = f"{time.perf_counter() - self.started:.0f} s"
        if self.budget is not None:
            headline["time budget"] = self.budget.describe(len(history))
        return headline
