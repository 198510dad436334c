"""fit(): the training loop, readable top to bottom.

Sections: configuration, data, model, loop, outputs.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .augment import DEFAULT_AUGMENT, build_pipeline
from .checkpoint import atomic_write_bytes, make_manifest, save_checkpoint
from .data import fingerprint, load_dataset
from .data.cache import DecodedImages, decode_samples
from .data.loader import Normalizer, make_loader
from .devices import resolve_device
from .errors import ConfigError
from .plugins import call_hook
from .registry import get_model
from .reporting import Reporter
from .specs import ModelSpec, Preprocess

# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Every option of ``imgcls train``; saved with each run as config.json."""

    model: str = "basic-cnn"
    data: str = "shapes"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    img_size: int | None = None
    augment: str = DEFAULT_AUGMENT
    seed: int = 0
    device: str = "auto"
    out: str = "runs"
    name: str | None = None
    exist_ok: bool = False
    val_split: float = 0.2
    cache: str = "memory"
    workers: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)

    def validate(self, spec: ModelSpec) -> None:
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}.", "--epochs 10"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}.",
             "--batch-size 64"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}.", "--lr 0.001"),
            (self.workers >= 0, f"--workers must be 0 or more, got {self.workers}.", "--workers 0"),
            (self.img_size is None or self.img_size >= spec.min_size,
             f"--img-size {self.img_size} is below {spec.name}'s minimum of {spec.min_size}.",
             f"--img-size {spec.input_size[0]}"),
        ]
        for ok, message, example in checks:
            if not ok:
                raise ConfigError(message, f"For example: {example}.")


@dataclass
class FitResult:
    run_dir: Path
    best_path: Path
    best: dict[str, float]
    history: list[dict[str, float]]
    classes: list[str]
    skipped: list[tuple[Path, str]]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_run_dir(out: str, name: str, exist_ok: bool, explicit: bool) -> Path:
    """runs/<name>, or runs/<name>-2, -3 ... when the name was not given explicitly."""
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
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create run folder {run_dir}: {exc.strerror}.",
                          "Pass a writable --out folder.") from exc
    return run_dir


# --------------------------------------------------------------------------- one epoch


def train_one_epoch(model: nn.Module, loader: Any, normalize: Normalizer, loss_fn: nn.Module,
                    optimizer: torch.optim.Optimizer, reporter: Reporter, epoch: int
                    ) -> dict[str, float]:
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    reporter.epoch_start(epoch, len(loader))
    for images, labels in loader:
        inputs = normalize(images)
        labels = labels.to(normalize.device, non_blocking=True)
        logits = model(inputs)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        reporter.batch_end(epoch)
    return {"train_loss": total_loss / seen, "train_acc": correct / seen}


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, normalize: Normalizer, loss_fn: nn.Module
             ) -> dict[str, float]:
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        labels = labels.to(normalize.device)
        logits = model(normalize(images))
        total_loss += loss_fn(logits, labels).item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    return {"val_loss": total_loss / seen, "val_acc": correct / seen}


# --------------------------------------------------------------------------- fit


def fit(config: TrainConfig | None = None, reporter: Reporter | None = None,
        **overrides: Any) -> FitResult:
    """Train a model as ``imgcls train`` does; returns where the checkpoint went."""
    config = config or TrainConfig(**overrides)
    reporter = reporter or Reporter()
    spec = get_model(config.model).spec
    config.validate(spec)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    preprocess = spec.preprocess.with_size(config.img_size) if config.img_size else spec.preprocess
    augment = build_pipeline(config.augment)

    # data: list files, decode each once at the model's input size
    dataset = load_dataset(config.data, config.data_options, config.val_split, config.seed)
    train_images = _decode(dataset.train, preprocess, config, reporter, "train")
    val_images = _decode(dataset.val or [], preprocess, config, reporter, "val")
    pin = device.type == "cuda"
    train_loader = make_loader(train_images, config.batch_size, transform=augment, shuffle=True,
                               seed=config.seed, workers=config.workers, pin_memory=pin)
    val_loader = make_loader(val_images, max(config.batch_size, 64), workers=0, pin_memory=pin)

    # model
    model = spec.build(len(dataset.classes), image_size=preprocess.size,
                       **config.model_options).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    normalize = Normalizer(preprocess, device)

    run_dir = make_run_dir(config.out, config.name or config.model, config.exist_ok,
                           explicit=config.name is not None)
    resolved = asdict(config) | {"device": str(device), "run_dir": str(run_dir)}
    atomic_write_bytes(run_dir / "config.json", json.dumps(resolved, indent=2).encode())
    reporter.start({"run_dir": run_dir, "device": device, "classes": dataset.classes,
                    "train": len(train_images), "val": len(val_images), "model": spec.name,
                    "params": sum(p.numel() for p in model.parameters()),
                    "notes": dataset.notes})
    call_hook("on_fit_start", config=config, classes=dataset.classes)

    # loop
    best: dict[str, float] = {}
    history: list[dict[str, float]] = []
    best_path = run_dir / "best.safetensors"
    data_ref = str(Path(config.data).resolve()) if Path(config.data).exists() else config.data
    data_info = {"data": data_ref, "options": config.data_options,
                 "source": dataset.source or config.data, "train": len(train_images),
                 "val": len(val_images), "fingerprint": fingerprint(dataset.train)}
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        record = train_one_epoch(model, train_loader, normalize, loss_fn, optimizer, reporter,
                                 epoch)
        seconds = time.perf_counter() - started
        record |= evaluate(model, val_loader, normalize, loss_fn)
        record |= {"epoch_seconds": seconds, "images_per_second": len(train_images) / seconds}
        history.append({"epoch": epoch, **record})
        if not best or record["val_acc"] > best["val_acc"]:
            best = {"epoch": epoch, **record}
            manifest = make_manifest(spec.name, config.model_options, dataset.classes, preprocess,
                                     training={"best": best, "epochs": config.epochs,
                                               "augment": config.augment, "seed": config.seed},
                                     dataset=data_info)
            save_checkpoint(best_path, model, manifest)
        reporter.epoch_end({"epoch": epoch, **record}, is_best=best["epoch"] == epoch)
        call_hook("on_epoch_end", epoch=epoch, metrics=record, run_dir=run_dir)

    # outputs
    result = FitResult(run_dir, best_path, best, history, dataset.classes,
                       train_images.skipped + val_images.skipped)
    call_hook("on_fit_end", result=result)
    reporter.end(result)
    return result


def _decode(samples: list, preprocess: Preprocess, config: TrainConfig, reporter: Reporter,
            split: str) -> DecodedImages:
    task = reporter.task(f"decoding {split}", len(samples))
    images = decode_samples(samples, preprocess, mode=config.cache, on_progress=task)
    for path, reason in images.skipped:
        reporter.warn(f"skipped unreadable image {path}: {reason}")
    return images
