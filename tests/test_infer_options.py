"""imgcls infer options: --resume, --shard, @lists, --strict, summaries, devices; Classifier."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from imgcls.cli import main
from imgcls.data import load_dataset
from imgcls.errors import DecodeError, DeviceError
from imgcls.infer import Classifier
from imgcls.infer.providers import gpu_available, make_session

from .helpers import TINY_SHAPES


@pytest.fixture(scope="module")
def listing(trained, tmp_path_factory):
    """A @list file of 40 val images, and the paths in it."""
    loaded = load_dataset("shapes", dict(TINY_SHAPES))
    paths = [str(path) for path, _ in loaded.val[:40]]
    path = tmp_path_factory.mktemp("lists") / "paths.txt"
    path.write_text("\n".join(paths) + "\n")
    return path, paths


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_list_input_and_summary_json(exported, listing, tmp_path, capsys):
    list_file, paths = listing
    out, summary = tmp_path / "p.csv", tmp_path / "s.json"
    assert main(["infer", str(exported), f"@{list_file}", "-o", str(out), "-b", "16",
                 "--summary-json", str(summary)]) == 0
    assert [row["path"] for row in rows(out)] == paths
    stats = json.loads(summary.read_text())
    assert stats["images"] == 40 and stats["batches"] == 3 and stats["failed"] == 0
    assert stats["images_per_second"] > 0 and stats["provider"] == "CPUExecutionProvider"
    assert 0 < stats["batch_latency_ms"]["p50"] <= stats["batch_latency_ms"]["p95"]
    printed = capsys.readouterr().out
    assert "40 images classified" in printed and "p50" in printed and "p95" in printed


def test_stdin_input(exported, listing, monkeypatch, capsys):
    _, paths = listing
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(paths[:5]) + "\n"))
    assert main(["infer", str(exported), "-", "-f", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == paths[:5]


def test_resume_skips_done_paths_and_repairs_a_cut_line(exported, listing, tmp_path, capsys):
    list_file, paths = listing
    first = tmp_path / "first.txt"
    first.write_text("\n".join(paths[:15]) + "\n")
    out = tmp_path / "p.csv"
    assert main(["infer", str(exported), f"@{first}", "-o", str(out), "-k", "2"]) == 0
    with open(out, "a") as handle:  # a run killed mid-row
        handle.write(paths[15] + ",circ")
    capsys.readouterr()
    assert main(["infer", str(exported), f"@{list_file}", "-o", str(out), "-k", "2",
                 "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "25 images classified" in printed and "15 already done" in printed
    assert [row["path"] for row in rows(out)] == paths
    assert all(row["confidence_2"] for row in rows(out))
    assert main(["infer", str(exported), f"@{list_file}", "-o", str(out), "--resume"]) == 1
    assert "not those of --top-k 1" in capsys.readouterr().err


def test_resume_says_how_many_were_done(exported, listing, tmp_path, capsys):
    list_file, paths = listing
    out = tmp_path / "p.jsonl"
    out.write_text("".join(json.dumps({"path": p}) + "\n" for p in paths[:30]))
    assert main(["infer", str(exported), f"@{list_file}", "-o", str(out), "-f", "jsonl",
                 "--resume"]) == 0
    assert "10 images classified" in capsys.readouterr().out
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == paths


def test_shards_cover_the_input_once(exported, listing, tmp_path):
    list_file, paths = listing
    seen = []
    for index in range(3):
        out = tmp_path / f"shard{index}.csv"
        assert main(["infer", str(exported), f"@{list_file}", "-o", str(out),
                     "--shard", f"{index}/3"]) == 0
        seen.append([row["path"] for row in rows(out)])
    assert sorted(p for shard in seen for p in shard) == sorted(paths)
    assert all(shard for shard in seen)  # 40 paths: every shard gets some


def test_errors_file_and_strict(exported, listing, tmp_path, capsys):
    _, paths = listing
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    list_file = tmp_path / "with-bad.txt"
    list_file.write_text("\n".join([*paths[:10], str(broken), *paths[10:20]]) + "\n")
    out = tmp_path / "p.csv"
    assert main(["infer", str(exported), f"@{list_file}", "-o", str(out)]) == 0
    errors = rows(tmp_path / "p.csv.errors.csv")
    assert [e["path"] for e in errors] == [str(broken)] and errors[0]["error"]
    assert len(rows(out)) == 20
    capsys.readouterr()
    assert main(["infer", str(exported), f"@{list_file}", "-o", str(out), "--strict",
                 "-b", "4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "broken.png" in err and "--strict" in err
    # A clean run removes the stale errors file of the run before.
    assert main(["infer", str(exported), paths[0], "-o", str(out)]) == 0
    assert not (tmp_path / "p.csv.errors.csv").exists()


@pytest.mark.skipif(gpu_available(), reason="checks the CPU-only behaviour")
def test_cuda_requests_fail_clearly_without_a_gpu(exported, listing, capsys, monkeypatch):
    assert main(["infer", str(exported), str(listing[1][0]), "--device", "cuda"]) == 1
    assert "CUDA was requested" in capsys.readouterr().err
    # Even when a GPU seems present, a session that fell back to the CPU is refused.
    monkeypatch.setattr("imgcls.infer.providers.gpu_available", lambda: True)
    with pytest.raises(DeviceError, match="fell back to CPUExecutionProvider"):
        make_session(exported, "cuda")
    assert main(["infer", str(exported), str(listing[1][0]), "--device", "tpu"]) == 1
    assert "Unknown device" in capsys.readouterr().err


def test_classifier_on_paths_pil_and_arrays(exported, listing):
    _, paths = listing
    classifier = Classifier.load(exported)
    images = [Image.open(p) for p in paths[:6]]
    arrays = [np.asarray(image.convert("RGB")) for image in images]
    by_path = classifier.predict(paths[:6], top_k=3)
    by_pil = classifier.predict(images, top_k=3)
    by_list = classifier.predict(arrays, top_k=3)
    by_batch = classifier.predict(np.stack(arrays), top_k=3)
    single = classifier.predict(arrays[0])
    assert [p.labels for p in by_path] == [p.labels for p in by_pil] == [
        p.labels for p in by_list] == [p.labels for p in by_batch]
    assert single[0].label == by_path[0].label and len(single[0].labels) == 1
    first = by_path[0]
    assert first.path == paths[0] and set(first.labels) == set(classifier.classes)
    assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    streamed = list(classifier.stream(paths[:6], top_k=3, workers=1))
    assert [p.labels for p in streamed] == [p.labels for p in by_path]
    with pytest.raises(DecodeError):
        classifier.predict(42)


def test_io_binding_reuses_buffers_and_matches_plain_runs(exported):
    from imgcls.infer.runners import IoBinding, OnnxRunner

    runner = OnnxRunner(exported, "cpu")
    assert runner._binding is None  # IO binding is for GPU sessions only
    binding = IoBinding(runner.session, runner.input_name, runner.output_name, np.float32,
                        device="cpu")
    rng = np.random.default_rng(0)
    for batch in (4, 4, 3, 4):
        x = rng.random((batch, 3, 64, 64), dtype=np.float32)
        assert np.allclose(binding(x, runner.classes), runner(x), atol=1e-6)
    assert sorted(shape[0] for shape in binding._buffers) == [3, 4]
