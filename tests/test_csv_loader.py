"""The csv loader: columns, relative paths, ids without extensions, TSV, splits, missing files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from imgcls.data import load_dataset, resolve_loader
from imgcls.data.csv_loader import load_csv
from imgcls.errors import DataError


def make_images(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (i * 20 % 256, 100, 50)).save(folder / name)
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    return make_images(tmp_path / "images", [f"img{i}.jpg" for i in range(8)])


def labels(loaded, split="train") -> list[tuple[str, str]]:
    samples = loaded.train if split == "train" else loaded.val
    return [(path.name, loaded.classes[label]) for path, label in samples]


def test_paths_relative_to_the_csv_and_any_string_labels(tmp_path, photos):
    rows = "\n".join(f"images/img{i}.jpg,{'golden retriever' if i % 2 else 'Chat (tabby)'}"
                     for i in range(8))
    loaded = load_csv(str(write(tmp_path / "labels.csv", "filename,breed\n" + rows)))
    assert loaded.classes == ["Chat (tabby)", "golden retriever"]
    assert labels(loaded)[:2] == [("img0.jpg", "Chat (tabby)"), ("img1.jpg", "golden retriever")]
    assert loaded.val is None and "path='filename' label='breed'" in loaded.notes[0]


def test_missing_files_are_counted_reported_and_skipped(tmp_path, photos):
    rows = [f"images/img{i}.jpg,a" for i in range(4)] + [f"images/gone{i}.jpg,b" for i in range(7)]
    rows += [f"images/img{i}.jpg,b" for i in range(4, 8)] + [",b", "images/img0.jpg,"]
    loaded = load_csv(str(write(tmp_path / "l.csv", "path,label\n" + "\n".join(rows))))
    assert len(loaded.train) == 8
    note = next(n for n in loaded.notes if "not found" in n)
    assert "7 rows skipped" in note and "gone0.jpg" in note and "gone4.jpg" in note
    assert "gone5.jpg" not in note and "..." in note  # a few examples, not all
    assert any("2 rows skipped, empty path or label" in n for n in loaded.notes)


def test_all_files_missing_points_at_image_root(tmp_path, photos):
    (tmp_path / "sub").mkdir()
    csv_path = write(tmp_path / "sub" / "l.csv", "path,label\nimg0.jpg,a\nimg1.jpg,b\n")
    with pytest.raises(DataError) as info:
        load_csv(str(csv_path))
    assert "None of the 2 listed files exist" in info.value.hint
    assert "--image-root" in info.value.hint
    loaded = load_csv(str(csv_path), image_root=str(photos))
    assert labels(loaded) == [("img0.jpg", "a"), ("img1.jpg", "b")]


def test_ids_without_extensions_are_resolved(tmp_path):
    folder = make_images(tmp_path / "train", ["0001.png", "0002.jpeg", "0003.JPG", "0004.jpg"])
    (folder / "0005.txt").write_text("not an image")
    csv_path = write(tmp_path / "train.csv", "id,label\n0001,x\n0002,y\n0003,x\n0004,y\n0005,y\n")
    loaded = load_csv(str(csv_path), image_root=str(folder))
    assert [name for name, _ in labels(loaded)] == ["0001.png", "0002.jpeg", "0003.JPG",
                                                    "0004.jpg"]
    assert any("1 rows skipped" in note and "0005" in note for note in loaded.notes)


def test_tsv_and_explicit_columns(tmp_path, photos):
    text = "label\tnotes\tpicture\n" + "".join(f"c{i % 3}\tn\timg{i}.jpg\n" for i in range(6))
    tsv = write(tmp_path / "data.tsv", text)
    with pytest.raises(DataError, match=r"no column 'nope'"):
        load_csv(str(tsv), path_column="picture", label_column="nope", image_root=str(photos))
    loaded = load_csv(str(tsv), path_column="picture", label_column="label",
                      image_root=str(photos))
    assert loaded.classes == ["c0", "c1", "c2"] and len(loaded.train) == 6


def test_unknown_column_name_lists_the_columns(tmp_path, photos):
    csv_path = write(tmp_path / "l.csv", "file,kind\nimages/img0.jpg,a\n")
    with pytest.raises(DataError, match=r"no column 'nope'.*\['file', 'kind'\]") as info:
        load_csv(str(csv_path), path_column="nope")
    assert "--path-column" in info.value.hint
    assert load_csv(str(csv_path), label_column="Kind").classes == ["a"]  # case-insensitive


def test_path_column_found_by_content_and_semicolons(tmp_path, photos):
    csv_path = write(tmp_path / "l.csv", "what;where\ncat;images/img0.jpg\ndog;images/img1.jpg\n")
    loaded = load_csv(str(csv_path))
    assert labels(loaded) == [("img0.jpg", "cat"), ("img1.jpg", "dog")]


def test_ambiguous_or_headerless_files_get_clear_errors(tmp_path, photos):
    ambiguous = write(tmp_path / "a.csv", "file,kind,colour\nimages/img0.jpg,a,red\n")
    with pytest.raises(DataError, match="labels") as info:
        load_csv(str(ambiguous))
    assert info.value.hint == "Pass --label-column NAME."
    headerless = write(tmp_path / "h.csv", "images/img0.jpg,a\nimages/img1.jpg,b\n")
    with pytest.raises(DataError, match="no header row"):
        load_csv(str(headerless))
    with pytest.raises(DataError, match="not found"):
        load_csv(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="empty"):
        load_csv(str(write(tmp_path / "e.csv", "\n\n")))


def test_split_column(tmp_path, photos):
    split = ["train", "train", "valid", "test", "train", "train", "val", "train"]
    rows = "".join(f"images/img{i}.jpg,{i % 2},{s}\n" for i, s in enumerate(split))
    loaded = load_csv(str(write(tmp_path / "l.csv", "image,label,split\n" + rows)))
    assert [n for n, _ in labels(loaded, "val")] == ["img2.jpg", "img6.jpg"]
    assert len(loaded.train) == 5
    assert any("1 test rows are not used" in note for note in loaded.notes)
    only_test = rows.replace("valid", "test").replace(",val\n", ",test\n")
    loaded = load_csv(str(write(tmp_path / "t.csv", "image,label,split\n" + only_test)))
    assert len(loaded.val) == 3  # test rows become validation when there is no val split


def test_separate_files_explicit_and_sibling(tmp_path, photos):
    write(tmp_path / "train.csv", "path,label\n" + "".join(
        f"images/img{i}.jpg,{'ab'[i % 2]}\n" for i in range(6)))
    write(tmp_path / "valid.csv", "path,label\nimages/img6.jpg,a\nimages/img7.jpg,b\n")
    loaded = load_csv(str(tmp_path / "train.csv"))
    assert [n for n, _ in labels(loaded, "val")] == ["img6.jpg", "img7.jpg"]
    assert "validation: valid.csv" in loaded.notes
    write(tmp_path / "other.csv", "path,label\nimages/img7.jpg,c\n")
    with pytest.raises(DataError, match=r"\['c'\].*do not occur"):
        load_csv(str(tmp_path / "train.csv"), val_file="other.csv")


def test_numeric_labels_sort_as_numbers(tmp_path, photos):
    rows = "".join(f"images/img{i}.jpg,{label}\n" for i, label in enumerate([10, 2, 1, 10, 2, 1]))
    assert load_csv(str(write(tmp_path / "l.csv", "path,label\n" + rows))).classes == \
        ["1", "2", "10"]


def test_data_argument_picks_the_csv_loader(tmp_path, photos):
    csv_path = write(tmp_path / "labels.csv", "path,label\n" + "".join(
        f"images/img{i}.jpg,{'ab'[i % 2]}\n" for i in range(8)))
    assert resolve_loader(str(csv_path)) == ("csv", str(csv_path))
    assert resolve_loader(f"csv:{csv_path}") == ("csv", str(csv_path))
    assert resolve_loader(str(photos)) == ("folder", str(photos))
    loaded = load_dataset(str(csv_path), val_split=0.25, seed=1)
    assert Counter(label for _, label in loaded.val) == {0: 1, 1: 1}
    via_options = load_dataset(f"csv:{csv_path}", {"path_column": "path", "label_column": "label",
                                                   "image_root": None})
    assert len(via_options.train) + len(via_options.val) == 8
