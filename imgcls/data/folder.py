"""The ``folder`` layout: one sub-folder per class, optionally under train/ and val/."""

from __future__ import annotations

import os
import unicodedata
import warnings
from pathlib import Path

from ..errors import DataError, DataWarning
from ..images import is_image_file
from ..specs import LoadedDataset, Sample

TRAIN_NAMES = ("train", "training", "training_set", "train_set")
# In order of preference: a real validation folder beats a test folder.
VAL_NAMES = ("val", "valid", "validation", "val_set", "test_set", "test")


OUTSIDE_POLICIES = ("allow", "refuse")
EXAMPLES = 5


def is_under(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path``'s real location (every symlink resolved) lies under ``root``'s."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, base]) == base


def outside_note(paths: list[Path], root: Path, policy: str, where: str) -> list[str]:
    """A note on the ``paths`` that resolve outside ``root``; DataError under ``refuse``.

    ``where`` names the listing (a CSV file, a folder) in the messages.
    """
    if policy not in OUTSIDE_POLICIES:
        raise DataError(f"Unknown outside={policy!r}.",
                        "Use --data-opt outside=allow (the default) or outside=refuse.")
    outside = [str(path) for path in paths if not is_under(path, root)]
    if not outside:
        return []
    examples = ", ".join(outside[:EXAMPLES]) + (" ..." if len(outside) > EXAMPLES else "")
    if policy == "refuse":
        raise DataError(f"{where}: {len(outside)} files resolve outside {root} (e.g. "
                        f"{examples}).", "Move them under the data root, or drop "
                        "--data-opt outside=refuse to use them anyway.")
    return [f"{where}: {len(outside)} files resolve outside {root} (e.g. {examples}); "
            "refuse them with --data-opt outside=refuse"]


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


def class_name(folder: Path) -> str:
    """A class folder's name as text: bytes that are not UTF-8 are shown as \\xNN escapes.

    Paths keep their bytes (surrogate escapes) to open the files; the class name
    goes into manifests, reports and CSV files, which must be valid text.
    """
    return os.fsencode(folder.name).decode("utf-8", "backslashreplace")


def _check_class_names(base: Path, folders: list[Path], classes: list[str]) -> None:
    """Refuse names that differ only in Unicode normalisation; warn on case and empty folders.

    NFC and NFD spellings print identically everywhere (reports, CSVs, the manifest),
    so two such classes could never be told apart: an error. Names that differ in
    case are visible and sometimes meant (``A`` and ``a`` in handwriting): a warning.
    """
    by_form: dict[str, str] = {}
    by_case: dict[str, str] = {}
    for name in classes:
        form = unicodedata.normalize("NFC", name)
        if form in by_form:
            raise DataError(f"Class folders {by_form[form]!r} and {name!r} in {base} have the "
                            "same name in different Unicode normalisations (NFC/NFD); they "
                            "would print as one class.", "Merge the two folders or rename one.")
        by_form[form] = name
        folded = form.casefold()
        if folded in by_case:
            warnings.warn(f"Class folders {by_case[folded]!r} and {name!r} in {base} differ "
                          "only in case; they train as two classes.", DataWarning, stacklevel=3)
        by_case.setdefault(folded, name)
    empty = [class_name(folder) for folder in folders if class_name(folder) not in classes]
    if empty:
        warnings.warn(f"{len(empty)} class folders in {base} hold no images and are not "
                      f"classes: {', '.join(empty[:EXAMPLES])}"
                      + (" ..." if len(empty) > EXAMPLES else ""), DataWarning, stacklevel=3)


def _samples(root: Path, classes: list[str]) -> list[Sample]:
    index = {name: i for i, name in enumerate(classes)}
    samples: list[Sample] = []
    for folder in class_dirs(root):
        if class_name(folder) not in index:
            if images_under(folder):
                raise DataError(
                    f"Class {class_name(folder)!r} in {root} does not exist in the training "
                    "folder.",
                    "Validation classes must be a subset of the training classes.",
                )
            continue
        samples.extend((path, index[class_name(folder)]) for path in images_under(folder))
    return samples


def load_folder(source: str | None, outside: str = "allow") -> LoadedDataset:
    """Read a class-per-folder tree, with or without train/ and val/ splits.

    Symlinks that resolve outside the folder are used and noted (``outside="allow"``)
    or refused with DataError (``outside="refuse"``).
    """
    if not source:
        raise DataError("The folder loader needs a path.", "Use --data path/to/images.")
    root = Path(source).expanduser()
    if not root.is_dir():
        raise DataError(f"Data folder not found: {root}",
                        "Pass a folder that holds one sub-folder per class.")
    train_root = _find(root, TRAIN_NAMES)
    val_root = _find(root, VAL_NAMES) if train_root else None
    base = train_root or root
    folders = class_dirs(base)
    classes = [class_name(folder) for folder in folders if images_under(folder)]
    if not classes:
        raise DataError(
            f"No images found in class sub-folders of {base}.",
            "Expected layout: DATA/<class>/*.jpg, or DATA/train/<class>/ and DATA/val/<class>/.",
        )
    _check_class_names(base, folders, classes)
    train = _samples(base, classes)
    val = _samples(val_root, classes) if val_root else None
    notes = [f"layout: {base.name}/ + {val_root.name}/" if val_root else "layout: class folders"]
    notes += outside_note([path for path, _ in train + (val or [])], root, outside, root.name)
    return LoadedDataset(classes=classes, train=train, val=val, source=str(root), notes=notes)
