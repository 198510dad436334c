"""Built-in dataset loaders: ``folder``, ``csv`` and the synthetic ``shapes`` default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imgcls import hookimpl
from imgcls.data import cache_dir
from imgcls.data.csv_loader import load_csv
from imgcls.data.folder import load_folder
from imgcls.data.shapes import default_root, generate
from imgcls.specs import DatasetSpec, LoadedDataset


def load_shapes(
    source: str | None = None,
    classes: int = 5,
    train_per_class: int = 1000,
    val_per_class: int = 200,
    size: int = 96,
    seed: int = 0,
) -> LoadedDataset:
    """Generate (once) and load the synthetic shapes set; ``source`` overrides its folder."""
    root = Path(source) if source else default_root(
        cache_dir(), classes, train_per_class, val_per_class, size, seed)
    generate(root, classes=int(classes), train_per_class=int(train_per_class),
             val_per_class=int(val_per_class), size=int(size), seed=int(seed))
    loaded = load_folder(str(root))
    loaded.notes.append(f"synthetic shapes generated in {root}")
    return loaded


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec("folder", load_folder,
                         "A folder with one sub-folder per class, or train/ and val/ splits."))
    register(DatasetSpec("csv", load_csv,
                         "A CSV/TSV of image paths (or ids) and labels; options path_column, "
                         "label_column, image_root, split_column, val_file."))
    register(DatasetSpec("shapes", load_shapes,
                         "Synthetic coloured shapes on noise (the default; generated once)."))
