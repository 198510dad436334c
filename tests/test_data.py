"""Dataset loaders and splits: folder layouts, shapes, stratified validation split."""

from __future__ import annotations

from collections import Counter

import pytest

from imgcls.data import load_dataset
from imgcls.data.splits import split_stratified
from imgcls.errors import DataError

from .helpers import write_class_folders

COLOURS = {"cat": (200, 50, 50), "dog": (50, 50, 200)}


def test_class_folders_get_a_stratified_split(tmp_path):
    write_class_folders(tmp_path, COLOURS, per_class=10)
    loaded = load_dataset(str(tmp_path), val_split=0.2, seed=3)
    assert loaded.classes == ["cat", "dog"]
    assert Counter(label for _, label in loaded.val) == {0: 2, 1: 2}
    assert len(loaded.train) == 16
    again = load_dataset(str(tmp_path), val_split=0.2, seed=3)
    assert again.val == loaded.val


@pytest.mark.parametrize("train_name,val_name", [("train", "val"), ("training_set", "test_set"),
                                                 ("train", "validation"), ("train", "valid")])
def test_split_folders_are_recognised(tmp_path, train_name, val_name):
    write_class_folders(tmp_path / train_name, COLOURS, per_class=4)
    write_class_folders(tmp_path / val_name, COLOURS, per_class=2)
    loaded = load_dataset(str(tmp_path))
    assert loaded.classes == ["cat", "dog"]
    assert len(loaded.train) == 8 and len(loaded.val) == 4
    assert all(val_name in str(path) for path, _ in loaded.val)


def test_val_class_missing_from_train_is_an_error(tmp_path):
    write_class_folders(tmp_path / "train", COLOURS, per_class=2)
    write_class_folders(tmp_path / "val", {"bird": (1, 2, 3)}, per_class=2)
    with pytest.raises(DataError, match="bird"):
        load_dataset(str(tmp_path))


def test_non_image_files_and_stray_files_are_ignored(tmp_path):
    write_class_folders(tmp_path, COLOURS, per_class=3)
    (tmp_path / "cat" / "notes.txt").write_text("hi")
    (tmp_path / "train.cache").write_bytes(b"\x93NUMPY")
    loaded = load_dataset(str(tmp_path), val_split=0.34)
    assert len(loaded.train) + len(loaded.val) == 6


def test_missing_empty_and_single_class_folders(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No images"):
        load_dataset(str(tmp_path / "empty"))
    write_class_folders(tmp_path / "one", {"cat": (1, 1, 1)}, per_class=3)
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(str(tmp_path / "one"))


def test_split_keeps_a_training_image_per_class(tmp_path):
    samples = [(tmp_path / f"{i}.png", i % 2) for i in range(4)]
    train, val = split_stratified(samples, 0.9, seed=0)
    assert {label for _, label in train} == {0, 1}
    assert len(train) + len(val) == 4


def test_shapes_is_generated_once_and_loads_as_a_folder():
    loaded = load_dataset("shapes", {"classes": 4, "train_per_class": 5, "val_per_class": 2})
    assert loaded.classes == ["circle", "square", "star", "triangle"]
    assert len(loaded.train) == 20 and len(loaded.val) == 8
    first = loaded.train[0][0]
    mtime = first.stat().st_mtime_ns
    load_dataset("shapes", {"classes": 4, "train_per_class": 5, "val_per_class": 2})
    assert first.stat().st_mtime_ns == mtime


def test_shapes_scale_shrinks_the_shapes_and_leaves_the_default_set_alone():
    import numpy as np

    from imgcls.data.shapes import ShapesOptions, drawn
    from imgcls.errors import ConfigError

    def masks(**options):
        chosen = ShapesOptions(classes=2, val_per_class=20, size=64, **options)
        return [mask for _, _, mask in drawn(chosen, "val")]

    default, same, smaller = masks(), masks(scale=100), masks(scale=50)
    assert all(np.array_equal(a, b) for a, b in zip(default, same, strict=True))
    area = np.mean([m.mean() for m in smaller]) / np.mean([m.mean() for m in default])
    assert 0.2 < area < 0.3  # half the radius, a quarter of the area
    assert ShapesOptions(scale=100).folder_name() == ShapesOptions().folder_name()
    assert ShapesOptions(scale=75).folder_name() != ShapesOptions().folder_name()
    for bad in (10, 121):
        with pytest.raises(ConfigError, match="scale"):
            ShapesOptions(scale=bad)


def test_unknown_data_gets_a_hint():
    with pytest.raises(DataError) as info:
        load_dataset("no-such-dataset-or-path")
    assert "shapes" in info.value.hint
