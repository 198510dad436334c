"""Built-in dataset loaders: ``folder``, ``csv`` and the synthetic ``shapes`` default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgcls import hookimpl
from imgcls.data.csv_loader import load_csv
from imgcls.data.folder import load_folder
from imgcls.data.shapes import SHAPES, ShapesOptions, default_root, generate
from imgcls.data.shapes_multilabel import generate_multilabel
from imgcls.specs import DatasetSpec, LoadedDataset
from imgcls.system import cache_dir


def load_shapes(source: str | None = None, **options: Any) -> LoadedDataset:
    """Generate (once) and load the synthetic shapes set; ``source`` overrides its folder.

    Options and their defaults: :class:`~imgcls.data.shapes.ShapesOptions`.
    """
    parsed = ShapesOptions.parse(options)
    root = Path(source) if source else default_root(cache_dir(), parsed)
    if parsed.multilabel:  # several shapes per image: listed in train.csv and val.csv
        generate_multilabel(root, parsed)
        loaded = load_csv(str(root / "train.csv"), task="multilabel",
                          classes=",".join(SHAPES[: parsed.classes]))
    else:
        generate(root, parsed)
        loaded = load_folder(str(root))
    loaded.notes.append(f"synthetic shapes generated in {root}")
    return loaded


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec("folder", load_folder,
                         "A folder with one sub-folder per class, or train/ and val/ splits."))
    register(DatasetSpec("csv", load_csv,
                         "A CSV/TSV of image paths (or ids) and labels (multi-label: "
                         "sep-separated labels or one 0/1 column per class); options "
                         "path_column, label_column, image_root, split_column, val_file, sep, "
                         "task, classes."))
    register(DatasetSpec("shapes", load_shapes,
                         "Synthetic coloured shapes on noise (the default; generated once)."))
