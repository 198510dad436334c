"""imgcls infer --engine ray on a local 2-CPU cluster: the rows of `imgcls infer`, resumable.

One cluster serves the module (starting one takes about 10 s); the CLI runs in this
process and finds it, except where a separate process joins it with address=.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from imgcls.cli import main
from imgcls.errors import ConfigError
from imgcls.infer.batch import InferOptions

TOP_K = 2
READABLE = 36
# Probabilities agree to 1e-6. Two CSVs round them to 6 decimals each, so where the
# last digit rounds apart their difference is 1e-6 plus float error.
TOLERANCE = 1e-6 + 1e-9


def _rows_csv(path: Path) -> dict[str, tuple[list[str], list[float]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "label", "confidence", "label_2", "confidence_2"]
    paths = [row[0] for row in rows[1:]]
    assert len(paths) == len(set(paths)), "a path is written twice"
    return {row[0]: (row[1::2], [float(v) for v in row[2::2]]) for row in rows[1:]}


def _rows_parquet(folder: Path) -> dict[str, tuple[list[str], list[float]]]:
    table = pq.read_table(folder).to_pylist()
    paths = [row["path"] for row in table]
    assert len(paths) == len(set(paths)), "a path is written twice"
    return {row["path"]: ([row["label"], row["label_2"]],
                          [row["confidence"], row["confidence_2"]]) for row in table}


def _errors(path: Path) -> set[str]:
    with open(path, newline="") as handle:
        return {row["path"] for row in csv.DictReader(handle)}


def max_difference(ours: dict, theirs: dict) -> float:
    """Same paths, same labels; the largest probability difference."""
    assert ours.keys() == theirs.keys()
    assert all(ours[p][0] == theirs[p][0] for p in ours), "labels differ"
    return max(abs(a - b) for p in ours for a, b in zip(ours[p][1], theirs[p][1], strict=True))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained 3-class basic-cnn exported to ONNX: varied, made-up probabilities."""
    import torch

    from imgcls.checkpoint import save_checkpoint
    from imgcls.export import export_onnx
    from imgcls.manifest import make_manifest
    from imgcls.registry import get_model

    folder = tmp_path_factory.mktemp("model")
    spec = get_model("basic-cnn").spec
    torch.manual_seed(0)
    network = spec.build(3, image_size=spec.input_size).eval()
    checkpoint = save_checkpoint(folder / "m.safetensors", network,
                                 make_manifest("basic-cnn", {}, ["cat", "dog", "fox"],
                                               spec.preprocess))
    return export_onnx(checkpoint, folder / "m.onnx").path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(READABLE):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        size = (40 + 7 * i, 90 - i)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        suffix = ".png" if i % 9 == 0 else ".jpg"
        Image.fromarray(pixels).save(folder / f"img{i:02d}{suffix}")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def local(model, photos, tmp_path_factory) -> dict:
    """`imgcls infer` on this machine: the rows every Ray run must match."""
    out = tmp_path_factory.mktemp("local") / "preds.csv"
    assert main(["infer", str(model), str(photos), "-o", str(out), "-k", str(TOP_K)]) == 0
    return {"csv": out, "rows": _rows_csv(out),
            "errors": _errors(out.with_name(out.name + ".errors.csv"))}


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="warning")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def infer_ray(model: Path, photos: Path, out: Path, *extra: str) -> int:
    return main(["infer", str(model), str(photos), "-o", str(out), "-k", str(TOP_K),
                 "--engine", "ray", *extra])


@pytest.mark.slow
def test_ray_rows_equal_imgcls_infer_and_unreadable_files_are_listed(
        cluster, model, photos, local, tmp_path, capsys):
    out = tmp_path / "preds.parquet"
    assert infer_ray(model, photos, out, "-f", "parquet") == 0
    rows = _rows_parquet(out)
    assert len(rows) == READABLE
    difference = max_difference(rows, local["rows"])
    print(f"max probability difference, ray (parquet) vs imgcls infer (csv): {difference:.2e}")
    assert difference <= TOLERANCE  # the CSV rounds to 6 decimals, Parquet keeps them all
    assert _errors(tmp_path / "preds.parquet.errors.csv") == local["errors"] == {
        str(photos / "a" / "broken.jpg")}
    err = capsys.readouterr().err
    assert "unreadable: " + str(photos / "a" / "broken.jpg") in err


@pytest.mark.slow
def test_an_interrupted_run_resumes_without_duplicates_or_gaps(
        cluster, model, photos, local, tmp_path, monkeypatch):
    from imgcls_ray import output

    out = tmp_path / "preds.parquet"
    replace, renamed = os.replace, []

    def killed_before_the_third_rename(source, target):
        if len(renamed) == 2:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) between writing and renaming
        renamed.append(target)
        replace(source, target)

    monkeypatch.setattr(output.os, "replace", killed_before_the_third_rename)
    assert infer_ray(model, photos, out, "-f", "parquet", "-b", "4",
                     "--engine-opt", "part_rows=8") == 130
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == 2 and len(list(out.glob(".part-*.tmp"))) == 1
    assert sum(pq.read_metadata(part).num_rows for part in parts) == 16
    monkeypatch.undo()
    summary = tmp_path / "summary.json"
    assert infer_ray(model, photos, out, "-f", "parquet", "--resume",
                     "--summary-json", str(summary)) == 0
    assert not list(out.glob(".part-*.tmp"))
    assert json.loads(summary.read_text())["skipped"] == 16
    assert max_difference(_rows_parquet(out), local["rows"]) <= TOLERANCE  # each image once
    # With every image done, resuming again needs no cluster.
    listing = tmp_path / "done.txt"
    listing.write_text("".join(f"{path}\n" for path in local["rows"]))
    assert main(["infer", str(model), f"@{listing}", "-o", str(out), "-k", str(TOP_K),
                 "--engine", "ray", "-f", "parquet", "--resume",
                 "--summary-json", str(summary)]) == 0
    again = json.loads(summary.read_text())
    assert (again["images"], again["skipped"]) == (0, READABLE)
    assert again["provider"] == "ray (not started: every image is done)"


@pytest.mark.slow
def test_a_second_process_joins_the_cluster_and_resumes_a_cut_csv(
        cluster, model, photos, local, tmp_path):
    # The first 10 rows and half of the 11th: a local run killed while writing.
    lines = local["csv"].read_text().splitlines(keepends=True)
    out = tmp_path / "preds.csv"
    out.write_text("".join(lines[:11]) + lines[11][:15])
    command = [sys.executable, "-m", "imgcls", "infer", str(model), str(photos), "-o",
               str(out), "-k", str(TOP_K), "--engine", "ray", "--resume",
               "--engine-opt", f"address={cluster}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "10 already done" in result.stdout and "1 unreadable" in result.stdout
    assert max_difference(_rows_csv(out), local["rows"]) <= TOLERANCE
    assert _errors(tmp_path / "preds.csv.errors.csv") == local["errors"]


# ----------------------------------------------------------------- without a cluster


def test_importing_the_plugin_does_not_import_ray():
    code = "import sys, imgcls_ray; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_mistakes_are_reported_before_a_cluster_starts(model, photos, tmp_path, capsys):
    from imgcls_ray.engine import run_ray

    checkpoint = model.with_suffix(".safetensors")
    with pytest.raises(ConfigError, match=r"runs \.onnx models") as info:
        run_ray(checkpoint, [str(photos)], InferOptions())
    assert "imgcls export onnx" in info.value.hint
    with pytest.raises(ConfigError, match="parquet needs an output folder"):
        run_ray(model, [str(photos)], InferOptions(fmt="parquet"))
    with pytest.raises(ConfigError, match="part_rows must be a whole number"):
        run_ray(model, [str(photos)], InferOptions(), part_rows=0)
    code = infer_ray(model, photos, tmp_path / "p.csv", "--engine-opt", "adress=auto")
    assert code == 1 and "Did you mean 'address'" in capsys.readouterr().err


def test_parts_of_another_top_k_are_refused_and_a_new_run_replaces_old_parts(
        model, photos, tmp_path):
    from imgcls_ray.engine import plan
    from imgcls_ray.output import PartWriter, part_files, write_parquet

    from imgcls.infer.engine import EngineStats, Failure, Prediction

    out = tmp_path / "preds.parquet"
    out.mkdir()
    writer = PartWriter(out, 1, part_rows=10)
    writer.add(Prediction("x.jpg", ["cat"], [0.9]))
    writer.flush()
    with pytest.raises(ConfigError, match="not those of --top-k 2"):
        plan(model, [str(photos)], InferOptions(output=out, fmt="parquet", top_k=2,
                                                resume=True))
    results = [Prediction(f"{i}.jpg", ["dog"], [0.5]) for i in range(5)] + [
        Failure("bad.jpg", "Cannot decode 'bad.jpg'")]
    summary = write_parquet(results, out, 1, part_rows=2, append=False,
                            errors_path=tmp_path / "errors.csv", strict=False,
                            stats=EngineStats())
    assert (summary.images, summary.failed) == (5, 1)
    assert len(part_files(out)) == 3  # 2 + 2 + 1 rows; the earlier run's part is gone
    assert sorted(pq.read_table(out).column("path").to_pylist()) == [
        f"{i}.jpg" for i in range(5)]
    assert _errors(tmp_path / "errors.csv") == {"bad.jpg"}


def test_uris_are_listed_and_decoded_through_pyarrow(photos):
    from imgcls_ray.inputs import list_inputs
    from imgcls_ray.stages import decode_batch

    from imgcls.specs import Preprocess

    uri = photos.as_uri()
    listed = list(list_inputs([uri], lambda path, reason: None))
    local = list(list_inputs([str(photos)], lambda path, reason: None))
    assert listed == [Path(path).as_uri() for path in local]
    preprocess = Preprocess(size=(16, 16))
    by_uri = decode_batch({"path": np.array(listed, dtype=object)}, preprocess)
    by_path = decode_batch({"path": np.array(local, dtype=object)}, preprocess)
    assert np.array_equal(by_uri["pixels"], by_path["pixels"])
    broken = listed[local.index(str(photos / "a" / "broken.jpg"))]
    errors = dict(zip(by_uri["path"], by_uri["error"], strict=True))
    assert errors[broken].startswith(f"Cannot decode {broken!r}")
    assert sum(bool(e) for e in errors.values()) == 1
