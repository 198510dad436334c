"""Say so when a model meets images labelled for another one.

``imgcls explain runs/basic-cnn/best.safetensors cats-dogs/val`` with a basic-cnn trained
on shapes answers "star 100%" for a cat: nothing fails, so nothing would tell the user that
the run folder holds another model than the one they meant. Class sub-folders are the one
label a folder of images carries; when none of their names is a class of the model, the
command prints what the model was trained on.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from ..errors import ImgclsError
from ..images import IMAGE_EXTENSIONS
from .console import print_warning

MAX_INPUTS = 20  # looked at; a long list of files is not scanned
MAX_ENTRIES = 200  # per folder: enough to find an image, cheap on a huge folder
SCANNED = 10_000  # entries of an input folder looked at for class sub-folders


def _holds_images(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
                       for entry in itertools.islice(entries, MAX_ENTRIES))
    except OSError:
        return False


def class_folders(root: Path) -> list[str]:
    """The sub-folders of ``root`` that hold images (train/ first, as train does)."""
    try:  # scandir knows folders without a stat per entry; a folder of files stops early
        with os.scandir(root) as entries:
            subfolders = sorted(Path(entry.path) for entry in itertools.islice(entries, SCANNED)
                                if entry.is_dir() and not entry.name.startswith("."))
    except OSError:
        return []
    labelled = [p.name for p in subfolders[:MAX_ENTRIES] if _holds_images(p)]
    if not labelled and (root / "train").is_dir():
        return class_folders(root / "train")
    return labelled


def _labelled_roots(inputs: list[str]) -> dict[Path, list[str]]:
    """Folders among the inputs (or holding an input file's folder) with class sub-folders."""
    found: dict[Path, list[str]] = {}
    for name in inputs[:MAX_INPUTS]:
        if name == "-" or name.startswith("@"):
            continue
        path = Path(name)
        root = path if path.is_dir() else path.parent.parent if path.is_file() else None
        if root is not None and root not in found:
            found[root] = class_folders(root)
    return {root: names for root, names in found.items() if len(names) >= 2}


def warn_if_labelled_for_another_model(model: str | os.PathLike, inputs: list[str]) -> None:
    """A warning naming the model's data and classes when the input's class folders are
    none of its classes."""
    from ..manifest import read_manifest

    roots = _labelled_roots(inputs)
    if not roots:
        return
    try:
        manifest = read_manifest(model)
    except ImgclsError:
        return  # the command itself reports a model it cannot read
    classes = [str(c) for c in manifest.get("classes") or []]
    for root, names in roots.items():
        if not set(names) & set(classes):
            data = (manifest.get("dataset") or {}).get("data", "data it does not record")
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            listed = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
            print_warning(f"{root} holds the classes {shown}, none of them a class of {model}: "
                          f"that model was trained on {data} ({len(classes)} classes: {listed}).")
            return
