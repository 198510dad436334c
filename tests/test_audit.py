"""imgcls data audit: flipped labels found by cross-validation, --probs files (and their
validation), near-duplicates, and corrected CSVs that never touch the originals."""

from __future__ import annotations

import csv
import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.audit.duplicates import close_pairs
from imgcls.audit.run import stratified_folds
from imgcls.cli import main
from imgcls.data.csv_loader import load_csv
from imgcls.data.shapes import ShapesOptions, generate

CLASSES = ("a", "b", "c")


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- flipped shapes

FLIPPED = 0.05
SEED = 0


@pytest.fixture(scope="module")
def flipped_shapes(tmp_path_factory) -> tuple[Path, set[str]]:
    """Circles, crosses and rings of the shapes set (480 each, 24 px) in a CSV whose labels
    are 5% flipped at random; returns the CSV and the flipped paths."""
    root = generate(tmp_path_factory.mktemp("shapes") / "set", ShapesOptions(
        classes=6, train_per_class=400, val_per_class=80, size=24, seed=0))
    rows = [(str(path), folder.name, split) for split in ("train", "val")
            for folder in sorted((root / split).iterdir()) if folder.name in ("circle", "cross",
                                                                              "ring")
            for path in sorted(folder.iterdir())]
    rng = random.Random(SEED)
    flipped = set(rng.sample(range(len(rows)), round(FLIPPED * len(rows))))
    labels = sorted({label for _, label, _ in rows})
    csv_path = root.parent / "noisy.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for i, (path, label, split) in enumerate(rows):
            if i in flipped:
                label = rng.choice([other for other in labels if other != label])
            writer.writerow([path, label, split])
    return csv_path, {rows[i][0] for i in flipped}


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_cross_validated_audit_finds_flipped_labels(flipped_shapes, tmp_path, capsys):
    data, truth = flipped_shapes
    (tmp_path / "fold.toml").write_text('augment = "none"\nbatch_size = 32\n'
                                        "warmup_epochs = 0.0\n")
    out = tmp_path / "audit"
    code, stdout, err = run(["data", "audit", "--data", str(data), "--model", "vgg-bn",
                             "--model-opt", "width=0.5", "--model-opt", "depth=3",
                             "--img-size", "24", "--folds", "4", "--epochs", "10", "--seed",
                             str(SEED), "--config", str(tmp_path / "fold.toml"),
                             "--no-duplicates", "--relabel", "--out-dir", str(out)], capsys)
    assert code == 0, err
    assert stdout.count("of its held-out images predicted as labelled") == 4
    issues = rows_of(out / "label_issues.csv")
    found = {row["path"] for row in issues}
    recall, precision = len(found & truth) / len(truth), len(found & truth) / len(found)
    print(f"{len(truth)} flipped, {len(found)} flagged: recall {recall:.2f}, "
          f"precision {precision:.2f}")
    assert recall >= 0.8 and precision >= 0.7
    scores = [float(row["score"]) for row in issues]
    assert scores == sorted(scores)  # most suspicious first
    # Every image is predicted once, by a fold that did not train on it.
    assert len(rows_of(out / "pred_probs.csv")) == 1440
    assert sorted(p.name for p in (out / "folds").glob("fold-*.csv")) == [
        f"fold-{k}.csv" for k in range(1, 5)]
    # The suggestions undo most flips: relabelled.csv is far closer to the truth.
    clean = {str(p): p.parent.name for p in (data.parent / "set").rglob("*.png")}
    noisy = {row["path"]: row["label"] for row in rows_of(data)}
    relabelled = {row["path"]: row["label"] for row in rows_of(out / "relabelled.csv")}
    wrong_before = sum(noisy[p] != clean[p] for p in noisy)
    wrong_after = sum(relabelled[p] != clean[p] for p in relabelled)
    assert wrong_before == len(truth) and wrong_after <= 0.3 * wrong_before
    html = (out / "audit.html").read_text()
    assert html.count("<figure>") == min(60, len(issues)) and "data:image/jpeg;base64," in html


# --------------------------------------------------------------------------- --probs


def smooth_image(rng: np.random.Generator, side: int = 48) -> Image.Image:
    """Random colour blobs: distinct pictures, whose perceptual hashes are far apart."""
    coarse = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def blobs_base(tmp_path_factory) -> Path:
    """train/{a,b,c}/ x 8 and val/{a,b,c}/ x 3, plus two re-encoded copies: one of a
    train/a image filed under train/b, one of another under val/a."""
    root = tmp_path_factory.mktemp("blobs") / "data"
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 3)):
        for label in CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                smooth_image(rng).save(folder / f"{label}{i}.png")
    for source, target in (("train/a/a0.png", "train/b/copy.jpg"),
                           ("train/a/a1.png", "val/a/copy.jpg")):
        Image.open(root / source).resize((40, 40)).save(root / target, quality=85)
    return root


@pytest.fixture
def blobs(blobs_base, tmp_path) -> Path:
    return Path(shutil.copytree(blobs_base, tmp_path / "data"))


def images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".png", ".jpg"))


# Mislabelled by the "model": it is sure these two are of another class.
WRONG = {"train/a/a3.png": "c", "val/c/c2.png": "b"}


def wide_probs(root: Path, path: Path, change: dict[str, list[str]] | None = None) -> Path:
    """path,a,b,c: 0.9 on the folder's class, except for WRONG; ``change`` edits cells."""
    rows = [["path", *CLASSES]]
    for image in images(root):
        sure = WRONG.get(image.relative_to(root).as_posix(), image.parent.name)
        rows.append([str(image), *("0.9" if c == sure else "0.05" for c in CLASSES)])
    for key, cells in (change or {}).items():
        if key == "header":
            rows[0] = cells
        else:
            rows[int(key)] = cells
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_probs_file_gives_ranked_issues_and_a_report(blobs, tmp_path, capsys):
    out = tmp_path / "audit"
    code, stdout, err = run(["data", "audit", "--data", str(blobs), "--probs",
                             str(wide_probs(blobs, tmp_path / "probs.csv")), "--out-dir",
                             str(out), "--no-duplicates"], capsys)
    assert code == 0, err
    issues = rows_of(out / "label_issues.csv")
    assert {(Path(r["path"]).relative_to(blobs).as_posix(), r["given_label"],
             r["suggested_label"]) for r in issues} == {
        ("train/a/a3.png", "a", "c"), ("val/c/c2.png", "c", "b")}
    assert all(float(r["score"]) < 0.1 for r in issues)
    assert "label issues: 2 of 35 images" in stdout
    html = (out / "audit.html").read_text()
    assert html.count("<figure>") == 2 and "given <b>a</b>" in html and "Not searched" in html
    assert not (out / "near_duplicates.csv").exists() and not (out / "folds").exists()
    # pred_probs.csv (what a cross-validated audit leaves) reads back as a --probs file.
    again = tmp_path / "again"
    assert main(["data", "audit", "--data", str(blobs), "--probs", str(out / "pred_probs.csv"),
                 "--out-dir", str(again), "--no-duplicates"]) == 0
    assert rows_of(again / "label_issues.csv") == issues


def test_near_duplicates_across_classes_and_train_val(blobs, tmp_path, capsys):
    out = tmp_path / "audit"
    code, stdout, err = run(["data", "audit", "--data", str(blobs), "--probs",
                             str(wide_probs(blobs, tmp_path / "probs.csv")), "--out-dir",
                             str(out)], capsys)
    assert code == 0, err
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows_of(out / "near_duplicates.csv"):
        groups.setdefault(row["group"], []).append(
            (Path(row["path"]).relative_to(blobs).as_posix(), row["kind"], row["split"]))
    assert sorted(sorted(group) for group in groups.values()) == [
        [("train/a/a0.png", "classes", "train"), ("train/b/copy.jpg", "classes", "train")],
        [("train/a/a1.png", "train/val", "train"), ("val/a/copy.jpg", "train/val", "val")]]
    assert "near-duplicates: 2 groups (1 across classes, 1 across train and val)" in stdout
    assert (out / "audit.html").read_text().count('class="group"') == 2


def test_what_imgcls_infer_writes_is_read_with_every_class(exported, tmp_path, capsys):
    from imgcls.data.shapes import default_root
    from imgcls.system import cache_dir

    from .helpers import TINY_SHAPES

    val = default_root(cache_dir(), ShapesOptions(**TINY_SHAPES)) / "val"
    data = ["--data", "shapes"] + [f"--data-opt={k}={v}" for k, v in TINY_SHAPES.items()]
    preds = tmp_path / "preds.csv"
    assert main(["infer", str(exported), str(val), "--top-k", "3", "-o", str(preds)]) == 0
    code, stdout, err = run(["data", "audit", *data, "--split", "val", "--probs", str(preds),
                             "--no-duplicates", "--out-dir", str(tmp_path / "audit")], capsys)
    assert code == 0, err
    assert "of 90 images" in stdout and (tmp_path / "audit" / "label_issues.csv").is_file()
    # Only the top class per image: the audit needs them all, and says how to get them.
    assert main(["infer", str(exported), str(val), "-o", str(preds)]) == 0
    code, _, err = run(["data", "audit", *data, "--split", "val", "--probs", str(preds)],
                       capsys)
    assert code == 1 and "holds the top 1 of the 3 classes" in err
    assert "Hint: Write every class's probability: imgcls infer MODEL IMAGES --top-k 3" in err


HOSTILE = {
    "an image not in the data": ({"1": ["/elsewhere/x.png", "0.9", "0.05", "0.05"]},
                                 "not in"),
    "a class name that is not the data's": ({"header": ["path", "a", "b", "dog"]},
                                            "columns 'dog' are not classes of the data"),
    "a missing class column": ({"header": ["path", "a", "b"]}, "no column for 'c'"),
    "a class column twice": ({"header": ["path", "a", "b", "b"]},
                             "no column for 'c'; a class column appears twice"),
    "a row that does not sum to 1": ({"2": ["{0}", "0.5", "0.1", "0.1"]},
                                     "the probabilities sum to 0.7, not 1"),
    "logits instead of probabilities": ({"2": ["{0}", "3.2", "-1", "0.4"]},
                                        "'3.2' is not a probability"),
    "nan": ({"2": ["{0}", "nan", "0.5", "0.5"]}, "'nan' is not a probability"),
    "an image twice": ({"3": ["{0}", "0.9", "0.05", "0.05"]}, "has probabilities twice"),
    "no path column": ({"header": ["file", "a", "b", "c"]}, "does not start with a path column"),
    "a ragged row": ({"2": ["{0}", "0.9"]}, "has 2 cells, not 4"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_bad_probs_file_is_one_clear_line(case, blobs, tmp_path, capsys):
    change, message = HOSTILE[case]
    first = str(images(blobs)[0])
    change = {key: [cell.format(first) for cell in cells] for key, cells in change.items()}
    probs = wide_probs(blobs, tmp_path / "probs.csv", change)
    code, _, err = run(["data", "audit", "--data", str(blobs), "--probs", str(probs),
                             "--out-dir", str(tmp_path / "audit")], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and message in err and "Traceback" not in err, err
    assert lines[0].startswith("Error: ") and lines[1].startswith("Hint: ") and len(lines) == 2
    assert not (tmp_path / "audit" / "label_issues.csv").exists()


def test_an_infer_file_with_unknown_classes_or_an_empty_file_is_refused(blobs, tmp_path,
                                                                       capsys):
    first = images(blobs)[0]
    preds = tmp_path / "preds.csv"
    preds.write_text("path,label,confidence,label_2,confidence_2,label_3,confidence_3\n"
                     f"{first},a,0.9,b,0.05,zebra,0.05\n")
    code, _, err = run(["data", "audit", "--data", str(blobs), "--probs", str(preds)], capsys)
    assert code == 1 and "class 'zebra' is not a class of the data (a, b, c)" in err
    preds.write_text("")
    code, _, err = run(["data", "audit", "--data", str(blobs), "--probs", str(preds)], capsys)
    assert code == 1 and "has no rows" in err and "Hint: " in err


# --------------------------------------------------------------------------- corrections


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in images(root)}


def test_relabel_and_quarantine_write_csvs_and_copies_never_touching_the_data(
        blobs, tmp_path, capsys):
    before, out, suspects = digests(blobs), tmp_path / "audit", tmp_path / "suspects"
    code, stdout, err = run(["data", "audit", "--data", str(blobs), "--probs",
                             str(wide_probs(blobs, tmp_path / "probs.csv")), "--out-dir",
                             str(out), "--no-duplicates", "--relabel", "--quarantine",
                             str(suspects)], capsys)
    assert code == 0, err
    assert digests(blobs) == before  # nothing in the data changed, moved or vanished
    assert sorted(p.relative_to(suspects).as_posix() for p in images(suspects)) == [
        "a/a3.png", "c/c2.png"]
    copied = rows_of(suspects / "copied.csv")
    assert [Path(r["original"]).name for r in copied] == ["a3.png", "c2.png"]
    assert "given 'a', suggested 'c'" in copied[0]["reason"]
    # Both CSVs load as data: relabelled keeps every image (two labels changed),
    # cleaned leaves the two out; both keep the train/val split.
    relabelled = load_csv(str(out / "relabelled.csv"))
    cleaned = load_csv(str(out / "cleaned.csv"))
    assert (len(relabelled.train), len(relabelled.val)) == (25, 10)
    assert (len(cleaned.train), len(cleaned.val)) == (24, 9)
    labels = {p.relative_to(blobs).as_posix(): relabelled.classes[i]
              for p, i in relabelled.train + relabelled.val}
    assert labels["train/a/a3.png"] == "c" and labels["val/c/c2.png"] == "b"
    assert labels["train/a/a2.png"] == "a"
    assert "copied 2 of them into" in stdout


def test_move_only_when_asked_and_never_into_the_data(blobs, tmp_path, capsys):
    probs = str(wide_probs(blobs, tmp_path / "probs.csv"))
    base = ["data", "audit", "--data", str(blobs), "--probs", probs, "--no-duplicates",
            "--out-dir", str(tmp_path / "audit")]
    code, _, err = run([*base, "--move"], capsys)
    assert code == 1 and "--move needs --quarantine DIR" in err
    code, _, err = run([*base, "--quarantine", str(blobs / "suspects")], capsys)
    assert code == 1 and "is inside the data folder" in err
    assert not (tmp_path / "audit").exists()  # refused before the audit ran
    code, stdout, err = run([*base, "--quarantine", str(tmp_path / "q"), "--move"], capsys)
    assert code == 0, err
    assert not (blobs / "train/a/a3.png").exists() and (tmp_path / "q/train/a/a3.png").is_file()
    manifest = rows_of(tmp_path / "q" / "manifest.csv")
    assert sorted(Path(r["original"]).name for r in manifest) == ["a3.png", "c2.png"]
    assert "moved 2 of them into" in stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--folds", "1"], "--folds must be 2 to 20, got 1"),
    (["--max-distance", "40"], "--max-distance must be 0 to 16 bits, got 40"),
    (["--split", "test"], "Unknown split 'test'"),
    (["-o", "x"], "-o/--output names a file; imgcls data audit writes a folder"),
    ([], "Missing --data"),
])
def test_audit_option_errors_are_one_line(args, message, blobs, tmp_path, capsys):
    data = ["--data", str(blobs)] if args else []
    code, _, err = run(["data", "audit", *data, *args, "--out-dir", str(tmp_path / "a")],
                       capsys)
    assert code == 1 and message in err and "Hint: " in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- pieces


def test_folds_are_stratified_seeded_and_cover_every_image():
    labels = ["x"] * 50 + ["y"] * 23 + ["z"] * 3
    folds = stratified_folds(labels, 5, seed=1)
    assert (folds == stratified_folds(labels, 5, seed=1)).all()
    assert not (folds == stratified_folds(labels, 5, seed=2)).all()
    for label, count in (("x", 50), ("y", 23)):
        sizes = np.bincount(folds[np.array(labels) == label], minlength=5)
        assert sizes.sum() == count and sizes.max() - sizes.min() <= 1
    assert np.bincount(folds, minlength=5).max() - np.bincount(folds, minlength=5).min() <= 1


def test_close_pairs_finds_exactly_the_pairs_a_full_comparison_finds():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    for i in range(0, 60, 3):  # plant pairs 0..8 bits apart
        flips = rng.choice(64, size=i % 9, replace=False)
        hashes[i + 1] = hashes[i] ^ np.uint64(sum(1 << int(b) for b in flips))
    for max_distance in (0, 4, 8):
        every = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
        expected = [(i, j, int(every[i, j])) for i in range(300) for j in range(i + 1, 300)
                    if every[i, j] <= max_distance]
        assert close_pairs(hashes, max_distance) == expected
