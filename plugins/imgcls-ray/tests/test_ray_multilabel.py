"""A multi-label model on the Ray engine's stages: the same rows as the local engine.

The stages import neither Ray nor torch, so they run here without a cluster."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("imgcls_ray")

from imgcls_ray.engine import _rows, plan
from imgcls_ray.stages import Classify, decode_batch

from imgcls.cli import main
from imgcls.infer.runners import OnnxRunner

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained multi-label basic-cnn exported to ONNX, thresholds spread out so that
    label sets differ between images (some empty)."""
    import torch

    from imgcls.checkpoint import save_checkpoint
    from imgcls.export import export_onnx
    from imgcls.manifest import make_manifest
    from imgcls.registry import get_model

    folder = tmp_path_factory.mktemp("ml-model")
    spec = get_model("basic-cnn").spec
    torch.manual_seed(0)
    network = spec.build(3, image_size=spec.input_size).eval()
    checkpoint = save_checkpoint(folder / "m.safetensors", network, make_manifest(
        "basic-cnn", {}, CLASSES, spec.preprocess, task="multilabel",
        thresholds=[0.3, 0.5, 0.7]))
    return export_onnx(checkpoint, folder / "m.onnx").path


def test_ray_stage_rows_equal_the_local_engines(model, tmp_path):
    from imgcls.infer.batch import InferOptions

    rng = np.random.default_rng(0)
    images = tmp_path / "images"  # outputs go beside the input folder, never inside it
    images.mkdir()
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(
            images / f"{i}.png")
    out = tmp_path / "local.csv"
    assert main(["infer", str(model), str(images), "-o", str(out)]) == 0
    with open(out, newline="") as handle:
        local = {row["path"]: row for row in csv.DictReader(handle)}
    paths = sorted(local)
    runner = OnnxRunner(model, "cpu")
    decoded = decode_batch({"path": np.array(paths, dtype=object)}, runner.preprocess)
    stage = Classify(model.read_bytes(), "cpu", 1, top_k=1)
    batch = stage(decoded)
    job = plan(model, [str(tmp_path)], InferOptions(top_k=1))
    assert job.classes == CLASSES

    class Stats:
        failed = images = 0

        def add_batch(self, *_: object) -> None:
            pass

    from imgcls.infer.writers import csv_row

    rows = {p.path: p for p in _rows(batch, ["labels", *(f"prob_{c}" for c in CLASSES)],
                                     Stats(), set(), job)}
    assert set(rows) == set(local)
    for path, prediction in rows.items():
        assert csv_row(prediction) == list(local[path].values())
    assert {row["labels"] for row in local.values()} != {""}


@pytest.mark.slow
def test_a_ray_run_writes_the_local_engines_label_set_rows(model, tmp_path):
    ray = pytest.importorskip("ray")
    rng = np.random.default_rng(1)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(
            images / f"{i}.png")
    local, remote = tmp_path / "local.csv", tmp_path / "ray.csv"
    assert main(["infer", str(model), str(images), "-o", str(local)]) == 0
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="warning")
    try:
        assert main(["infer", str(model), str(images), "-o", str(remote), "--engine", "ray",
                     "--threshold", "0.5"]) == 0
        parquet = tmp_path / "p.parquet"
        assert main(["infer", str(model), str(images), "-o", str(parquet), "--engine", "ray",
                     "-f", "parquet", "--threshold", "0.5"]) == 0
        # --resume reads the parts back with the multi-label columns: nothing is redone.
        assert main(["infer", str(model), str(images), "-o", str(parquet), "--engine", "ray",
                     "-f", "parquet", "--threshold", "0.5", "--resume"]) == 0
    finally:
        ray.shutdown()
    assert main(["infer", str(model), str(images), "-o", str(local.with_suffix(".05.csv")),
                 "--threshold", "0.5"]) == 0

    def rows(path: Path) -> dict[str, list[str]]:
        with open(path, newline="") as handle:
            return {row[0]: row for row in csv.reader(handle)}

    assert rows(remote) == rows(local.with_suffix(".05.csv"))
    assert rows(remote)["path"] == ["path", "labels", *(f"prob_{c}" for c in CLASSES)]
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.column_names == ["path", "labels", *(f"prob_{c}" for c in CLASSES)]
    assert str(table.schema.field("labels").type) == "string"
    assert table.num_rows == 12  # the resumed run added no rows
    local_rows = rows(local.with_suffix(".05.csv"))
    for row in table.to_pylist():
        expected = local_rows[row["path"]]
        assert row["labels"] == expected[1]
        assert [f"{row[f'prob_{c}']:.6f}" for c in CLASSES] == [
            f"{float(v):.6f}" for v in expected[2:]]
