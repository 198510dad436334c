"""Turning a ``--data`` argument into labelled samples, split and ready to train."""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, ImgclsError
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
    options = dict(options or {})
    if task is not None and "task" in inspect.signature(get_dataset(name).spec.load).parameters:
        options["task"] = task
    loaded = with_task(call_loader(name, source, options), task, data)
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


def call_loader(name: str, source: str | None, options: dict[str, Any]) -> LoadedDataset:
    """Call the loader plugin: a wrong option or a crash in it is one error naming it."""
    entry = get_dataset(name)
    load = entry.spec.load
    try:
        inspect.signature(load).bind(source, **options)
    except TypeError as exc:
        takes = [p.name for p in list(inspect.signature(load).parameters.values())[1:]
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise ConfigError(f"The {name} dataset loader does not take these --data-opt "
                          f"options: {exc}.", f"It takes: {', '.join(takes) or 'none'}.") from exc
    except ValueError:  # no signature to check (a builtin): let the call decide
        pass
    try:
        return load(source, **options)
    except ImgclsError:
        raise
    except Exception as exc:  # a plugin's bug: name the plugin, not a raw traceback
        raise DataError(f"The dataset loader {name!r} of plugin {entry.plugin!r} failed on "
                        f"{source or name}: {type(exc).__name__}: {exc}",
                        "Report it to the plugin's authors; --debug shows the traceback."
                        ) from exc


def fingerprint(samples: list[tuple[Path, int]]) -> str:
    """A short hash of file paths, sizes, mtimes and labels: changes when the data does."""
    digest = hashlib.sha256()
    for path, label in samples:
        try:
            stat = os.stat(path)
            line = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{label}\n"
        except OSError:
            line = f"{path}|missing|{label}\n"
        # A file name that is not UTF-8 reaches Python as surrogate escapes: hash its bytes.
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]
