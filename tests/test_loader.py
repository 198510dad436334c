"""Batches from decoded pixels: fetched whole, augmented per batch, workers chosen sensibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imgcls.data.augment import build_pipeline
from imgcls.data.cache import DecodedImages
from imgcls.data.lazy import LazyImages
from imgcls.data.loader import DeviceNormaliser, PixelDataset, auto_workers, make_loader
from imgcls.specs import Preprocess


def decoded(n: int = 10, size: int = 8) -> DecodedImages:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return DecodedImages(pixels, np.arange(n) % 3, [Path(f"{i}.png") for i in range(n)])


class CountingImages(DecodedImages):
    calls: list[int]

    def take(self, indices):
        self.calls.append(len(indices))
        return super().take(indices)


def test_batches_are_uint8_nchw_in_order_without_shuffle():
    """NCHW in shape, channels-last in memory (as decoded: no copy per batch)."""
    images = decoded()
    batches = list(make_loader(images, 4))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    first, labels = batches[0]
    assert first.dtype == torch.uint8 and first.shape == (4, 3, 8, 8)
    assert first.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(first, torch.from_numpy(images.pixels[:4]).permute(0, 3, 1, 2))
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1, 2, 0]


def test_each_batch_is_one_slice_of_the_cache():
    images = CountingImages(*vars(decoded(10)).values())
    images.calls = []
    loader = make_loader(images, 4, shuffle=True, seed=3)
    seen = sorted(int(label) for _, batch in loader for label in batch)
    assert images.calls == [4, 4, 2] and len(seen) == 10


def test_shuffle_follows_the_seed():
    def order(seed):
        return [tuple(labels.tolist()) for _, labels in make_loader(decoded(30), 8, shuffle=True,
                                                                    seed=seed)]
    assert order(1) == order(1) and order(1) != order(2)


@pytest.mark.parametrize("kind", ["pipeline", "batched", "per-image"])
def test_every_kind_of_transform_is_applied(kind):
    images = decoded(6)
    flip = build_pipeline("flip=1")
    calls = []

    def per_image(image):
        calls.append(image.shape)
        return image.flip(-1)

    transform = {"pipeline": flip, "batched": flip.sample[0], "per-image": per_image}[kind]
    batch, _ = next(iter(make_loader(images, 6, transform=transform)))
    expected = torch.from_numpy(images.pixels).permute(0, 3, 1, 2).flip(-1)
    assert torch.equal(batch, expected)
    assert calls == ([(3, 8, 8)] * 6 if kind == "per-image" else [])


def test_single_items_still_work():
    dataset = PixelDataset(decoded(3), build_pipeline("vflip=1"))
    image, label = dataset[2]
    assert image.shape == (3, 8, 8) and label == 2
    assert torch.equal(image, torch.from_numpy(decoded(3).pixels[2]).permute(2, 0, 1).flip(-2))


def test_workers_are_chosen_by_the_kind_of_data(monkeypatch, tmp_path):
    assert auto_workers(decoded()) == 0
    assert make_loader(decoded(), 4).num_workers == 0
    lazy = LazyImages([(tmp_path / "a.png", 0)], Preprocess(size=(8, 8)))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert auto_workers(lazy) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert auto_workers(lazy) == 4
    assert make_loader(decoded(), 4, workers=2).num_workers == 2


def test_normalizer_applies_the_models_preprocessing():
    pre = Preprocess(size=(2, 2), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="BGR")
    batch = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    batch[:, 0] = 255
    out = DeviceNormaliser(pre, torch.device("cpu"))(batch)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))
