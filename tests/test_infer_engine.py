"""The streaming engine and its inputs, with a fake model: batching, order, shards, resume."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from imgcls.errors import ConfigError, DataError
from imgcls.infer.engine import (
    DecodePool,
    EngineStats,
    Failure,
    Prediction,
    predict_stream,
)
from imgcls.infer.sources import PathSet, check_inputs, in_shard, iter_paths, parse_shard
from imgcls.specs import Preprocess

PRE = Preprocess(size=(8, 8))


class BrightnessModel:
    """Class "bright" when the mean pixel exceeds 127; records every batch it sees."""

    def __init__(self) -> None:
        self.manifest = {"classes": ["dark", "bright"], "preprocess": PRE.to_dict()}
        self.batches: list[int] = []

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        self.batches.append(len(pixels))
        bright = pixels.reshape(len(pixels), -1).mean(axis=1) / 255.0
        return np.stack([1.0 - bright, bright], axis=1)


@pytest.fixture
def grey_images(tmp_path):
    """23 images of increasing brightness, and 3 unreadable files among them."""
    paths = []
    for i in range(26):
        path = tmp_path / f"img_{i:02d}.png"
        if i in (3, 11, 12):
            path.write_bytes(b"not an image")
        else:
            Image.new("RGB", (12, 10), (i * 10,) * 3).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_batches_are_full_and_predictions_keep_input_order(grey_images, backend):
    model = BrightnessModel()
    stats = EngineStats()
    results = list(predict_stream(model, grey_images, batch_size=5, workers=2, backend=backend,
                                  stats=stats))
    predictions = [r for r in results if isinstance(r, Prediction)]
    failures = [r for r in results if isinstance(r, Failure)]
    assert sorted(f.path.rsplit("_", 1)[-1] for f in failures) == ["03.png", "11.png", "12.png"]
    assert all("Cannot decode" in f.reason for f in failures)
    assert [p.path for p in predictions] == [
        p for i, p in enumerate(grey_images) if i not in (3, 11, 12)]
    assert model.batches == [5, 5, 5, 5, 3]
    assert [p.label for p in predictions[:2]] == ["dark", "dark"]
    assert predictions[-1].label == "bright"
    assert stats.images == 23 and stats.failed == 3 and stats.batches == 5
    assert 0 < stats.latency_ms(50) <= stats.latency_ms(95)


def test_probabilities_property_and_top_k(grey_images):
    results = predict_stream(BrightnessModel(), grey_images[:2], batch_size=4, top_k=5,
                             backend="thread")
    first = next(r for r in results if isinstance(r, Prediction))
    assert first.labels == ["dark", "bright"]  # top_k is capped at the number of classes
    assert first.probabilities == pytest.approx({"dark": 1.0, "bright": 0.0})


def test_decode_pool_streams_with_a_bounded_window(grey_images):
    consumed = []

    def paths():
        for path in itertools.cycle(grey_images[:2]):
            consumed.append(path)
            yield path

    with DecodePool(1, "thread") as pool:
        chunks = pool.imap(paths(), PRE, chunk=4, window=3)
        next(chunks)
        next(chunks)
    # An endless input: only the window (plus one refill per chunk taken) was read.
    assert len(consumed) <= 4 * (3 + 2) + 1


def test_bad_pool_options():
    with pytest.raises(ConfigError, match="decode backend"):
        DecodePool(2, "gpu")
    with pytest.raises(ConfigError, match="at least 1"):
        DecodePool(0, "thread")


def test_latency_sample_stays_bounded():
    stats = EngineStats(sample_size=10)
    for i in range(1000):
        stats.add_batch(1, i / 1000)
    assert len(stats._latencies) == 10 and stats.batches == 1000
    assert 0.1 < stats.latency_ms(50) / 1000 < 0.9  # a sample of all batches, not the first 10


# --------------------------------------------------------------------------- inputs


def test_inputs_from_lists_stdin_folders_and_globs(tmp_path, grey_images, monkeypatch):
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(grey_images[:3]) + "\n\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(grey_images[4] + "\n"))
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "sub" / "a.png")
    found = list(iter_paths([f"@{listing}", "-", str(tmp_path / "sub"),
                             str(tmp_path / "img_2*.png")]))
    assert found == [*grey_images[:3], grey_images[4], str(tmp_path / "sub" / "a.png"),
                     *grey_images[20:26]]


def test_missing_inputs_fail_before_anything_runs(tmp_path):
    with pytest.raises(DataError, match="No images found"):
        check_inputs([str(tmp_path / "nothing*.png")])
    with pytest.raises(DataError, match="Path list not found"):
        check_inputs([f"@{tmp_path / 'missing.txt'}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No images found"):
        check_inputs([str(tmp_path / "empty")])


def test_shards_partition_the_input():
    paths = [f"/data/{i // 100}/photo_{i}.jpg" for i in range(3000)]
    shards = [list(in_shard(paths, i, 4)) for i in range(4)]
    assert sorted(itertools.chain(*shards)) == sorted(paths)
    assert all(600 < len(s) < 900 for s in shards)  # roughly even
    # Independent of the listing order: each machine may list files differently.
    assert set(in_shard(reversed(paths), 1, 4)) == set(shards[1])


@pytest.mark.parametrize("text", ["4/4", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_path_set():
    done = PathSet(f"p{i}" for i in range(100_000))
    assert len(done) == 100_000
    assert "p0" in done and "p99999" in done and "p100000" not in done
    assert done._hashes.nbytes == 800_000  # 8 bytes a path
    assert list(done.skip(["p5", "new", "p7"])) == ["new"]
    assert "x" not in PathSet()


@pytest.mark.parametrize("preprocess", [
    Preprocess(size=(8, 8)),
    Preprocess(size=(6, 10), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
               channel_order="BGR"),
    Preprocess(size=(5, 5), value_range=(-1.0, 1.0)),
])
def test_inference_input_equals_training_input_bit_for_bit(preprocess):
    import torch

    from imgcls.data.loader import DeviceNormaliser

    height, width = preprocess.size
    pixels = np.random.default_rng(0).integers(0, 256, (7, height, width, 3), dtype=np.uint8)
    fast = preprocess.apply(pixels)
    assert fast.dtype == np.float32 and fast.flags.c_contiguous
    trained_on = DeviceNormaliser(preprocess, torch.device("cpu"))(
        torch.from_numpy(pixels).permute(0, 3, 1, 2))
    assert np.array_equal(fast, trained_on.numpy())
    assert np.array_equal(preprocess.apply(pixels[0]), fast[:1])
