"""The ``folder`` layout: one sub-folder per class, optionally under train/ and val/."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..images import is_image_file
from ..specs import LoadedDataset, Sample

TRAIN_NAMES = ("train", "training", "training_set", "train_set")
# In order of preference: a real validation folder beats a test folder.
VAL_NAMES = ("val", "valid", "validation", "val_set", "test_set", "test")


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    children = {child.name.lower(): child for child in root.iterdir() if child.is_dir()}
    for name in names:
        if name in children:
            return children[name]
    return None


def class_dirs(root: Path) -> list[Path]:
    return sorted(
        (child for child in root.iterdir() if child.is_dir() and not child.name.startswith(".")),
        key=lambda p: p.name,
    )


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def _samples(root: Path, classes: list[str]) -> list[Sample]:
    index = {name: i for i, name in enumerate(classes)}
    samples: list[Sample] = []
    for folder in class_dirs(root):
        if folder.name not in index:
            if images_under(folder):
                raise DataError(
                    f"Class {folder.name!r} in {root} does not exist in the training folder.",
                    "Validation classes must be a subset of the training classes.",
                )
            continue
        samples.extend((path, index[folder.name]) for path in images_under(folder))
    return samples


def load_folder(source: str | None) -> LoadedDataset:
    """Read a class-per-folder tree, with or without train/ and val/ splits."""
    if not source:
        raise DataError("The folder loader needs a path.", "Use --data path/to/images.")
    root = Path(source).expanduser()
    if not root.is_dir():
        raise DataError(f"Data folder not found: {root}",
                        "Pass a folder that holds one sub-folder per class.")
    train_root = _find(root, TRAIN_NAMES)
    val_root = _find(root, VAL_NAMES) if train_root else None
    base = train_root or root
    classes = [folder.name for folder in class_dirs(base) if images_under(folder)]
    if not classes:
        raise DataError(
            f"No images found in class sub-folders of {base}.",
            "Expected layout: DATA/<class>/*.jpg, or DATA/train/<class>/ and DATA/val/<class>/.",
        )
    train = _samples(base, classes)
    val = _samples(val_root, classes) if val_root else None
    notes = [f"layout: {base.name}/ + {val_root.name}/" if val_root else "layout: class folders"]
    return LoadedDataset(classes=classes, train=train, val=val, source=str(root), notes=notes)
