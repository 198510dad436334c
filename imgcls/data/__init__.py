"""Turning a ``--data`` argument into labelled samples, split and ready to train."""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..registry import get_dataset, has_dataset, list_datasets
from ..specs import LoadedDataset
from .splits import split_stratified

TABLE_SUFFIXES = (".csv", ".tsv")


def resolve_loader(data: str) -> tuple[str, str | None]:
    """``shapes`` -> (shapes, None); ``csv:x.csv`` or ``x.csv`` -> (csv, x.csv); a folder ->
    (folder, path)."""
    path = Path(data)
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        return "csv", data
    if path.exists():
        return "folder", data
    name, sep, source = data.partition(":")
    if has_dataset(name):
        return name, (source if sep else None)
    names = ", ".join(entry.spec.name for entry in list_datasets())
    raise DataError(
        f"Data not found: {data!r} is neither an existing path nor a dataset name.",
        f"Pass a folder with one sub-folder per class, or one of: {names} "
        "(e.g. --data shapes).",
    )


def load_dataset(
    data: str, options: dict[str, Any] | None = None, val_split: float = 0.2, seed: int = 0,
    task: str | None = None,
) -> LoadedDataset:
    """Load ``data`` with its loader plugin; split off validation samples if it has none.

    ``task`` (multiclass or multilabel) overrides the task the loader detected.
    """
    name, source = resolve_loader(data)
    load = get_dataset(name).spec.load
    options = dict(options or {})
    if task is not None and "task" in inspect.signature(load).parameters:
        options["task"] = task
    loaded = with_task(load(source, **options), task, data)
    if len(loaded.classes) < 2:
        raise DataError(
            f"Found {len(loaded.classes)} class in {data!r}: {loaded.classes}; "
            "a classifier needs at least 2.",
            "Put each class's images in its own sub-folder.",
        )
    if not loaded.train:
        raise DataError(f"No training images found in {data!r}.",
                        "Check the folder layout: one sub-folder per class.")
    if loaded.val is None:
        loaded.train, loaded.val = split_stratified(loaded.train, val_split, seed)
        loaded.notes.append(f"validation: {val_split:.0%} stratified split (seed {seed})")
    if not loaded.val:
        raise DataError(f"No validation images in {data!r}.",
                        "Add a val/ folder or use --val-split with more images per class.")
    return loaded


def with_task(loaded: LoadedDataset, task: str | None, data: str) -> LoadedDataset:
    """``loaded`` as ``task``: one-label samples become one-element label sets, and
    label sets become single labels when every image has exactly one."""
    if task is None or task == loaded.task:
        return loaded
    splits = [loaded.train, *([loaded.val] if loaded.val is not None else [])]
    if task == "multilabel":
        for samples in splits:
            samples[:] = [(path, (int(label),)) for path, label in samples]
    elif task == "multiclass":
        counts = {len(labels) for samples in splits for _, labels in samples}
        if counts != {1}:
            raise DataError(f"{data!r} has images with {min(counts)} or {max(counts)} labels, "
                            "so it cannot be trained as multiclass.",
                            "Use --task multilabel, or give every image exactly one label.")
        for samples in splits:
            samples[:] = [(path, labels[0]) for path, labels in samples]
    else:
        raise DataError(f"Unknown task {task!r}.", "Use multiclass or multilabel.")
    loaded.task = task
    loaded.notes.append(f"task: {task} (--task)")
    return loaded


def fingerprint(samples: list[tuple[Path, int]]) -> str:
    """A short hash of file paths, sizes, mtimes and labels: changes when the data does."""
    digest = hashlib.sha256()
    for path, label in samples:
        try:
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{label}\n".encode())
        except OSError:
            digest.update(f"{path}|missing|{label}\n".encode())
    return digest.hexdigest()[:16]
