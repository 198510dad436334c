"""A frozen backbone's features are computed once per image and the head trains on them
(imgcls/train/features.py): same results as training on images, far fewer backbone passes."""

from __future__ import annotations

import types

import pytest
import torch
from torch import nn

from imgcls import hookimpl, plugins
from imgcls.specs import ModelSpec, Preprocess
from imgcls.train import fit
from imgcls.train.progress import Reporter

from .helpers import colour_data, tiny_config

# Images through the backbone, counted by the fixture models' stems.
SEEN = {"images": 0}


class Count(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        SEEN["images"] += len(x)
        return x


class Doubled(nn.Module):
    """Something a model computes after its head: cached features cannot stand in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def backbone(num_classes: int, after_head: bool = False) -> nn.Module:
    layers = [Count(), nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)]
    return nn.Sequential(*layers, *([Doubled()] if after_head else []))


@pytest.fixture(autouse=True)
def fixture_models():
    module = types.ModuleType("feature_fixture")

    @hookimpl
    def register_models(register):
        for name, after in (("tiny-backbone", False), ("after-head", True)):
            register(ModelSpec(name, lambda num_classes, after=after, **_: backbone(
                num_classes, after), Preprocess(size=(16, 16)), "fixture"))

    module.register_models = register_models
    plugins.load_plugins()
    plugins.pm.register(module, name="feature-fixture")
    yield
    plugins.pm.unregister(module)


class Notes(Reporter):
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.warnings: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


# check_output_shape runs one blank image through the model before training starts.
CHECK = 1


def train(tmp_path, name: str, model: str = "tiny-backbone", **options):
    data = colour_data(tmp_path / "colours", per_class=10)
    settings = dict(model=model, name=name, epochs=4, freeze_backbone=True, augment="none",
                    ema=False, lr=0.05)
    config = tiny_config(data, tmp_path / "runs", **(settings | options))
    SEEN["images"] = 0
    reporter = Notes()
    result = fit(config, reporter)
    return result, SEEN["images"], reporter


def test_a_frozen_unaugmented_run_trains_on_features_with_the_same_results(tmp_path):
    cached, cached_seen, reporter = train(tmp_path, "cached")
    images, images_seen, _ = train(tmp_path, "images", cache_features=False)
    # 30 training and 15 validation images: once each with the cache, every epoch without.
    assert cached_seen == CHECK + 30 + 15
    assert images_seen == CHECK + 4 * (30 + 15)
    assert any("computed once" in note for note in reporter.notes)
    for a, b in zip(cached.history, images.history, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert cached.history[-1]["val_acc"] == images.history[-1]["val_acc"]


def test_features_are_not_cached_when_images_are_augmented_or_the_backbone_thaws(tmp_path):
    _, augmented, _ = train(tmp_path, "flip", augment="flip")
    assert augmented == CHECK + 4 * (30 + 15)
    # Two frozen epochs on features (45 images once), then two on images (30 training
    # and 15 validation images each).
    _, thawed, _ = train(tmp_path, "thaw", freeze_backbone=False, freeze_backbone_epochs=2)
    assert thawed == CHECK + 45 + 2 * 45


def test_a_model_that_computes_after_its_head_trains_on_images(tmp_path):
    result, seen, reporter = train(tmp_path, "after", model="after-head")
    assert any("cannot be cached" in warning for warning in reporter.warnings)
    assert seen == CHECK + 30 + 4 * (30 + 15)  # one check of the first batch, then images
    assert len(result.history) == 4


def test_imgcls_train_says_it_trains_the_head_on_features(tmp_path, capsys):
    from imgcls.cli import main

    data = colour_data(tmp_path / "colours", per_class=6)
    SEEN["images"] = 0
    code = main(["train", "--model", "tiny-backbone", "--data", str(data), "--epochs", "3",
                 "--img-size", "16", "--freeze-backbone", "--augment", "none", "--no-report",
                 "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0
    assert "features (8 per image) are computed once" in " ".join(out.split())
    assert SEEN["images"] == CHECK + 18 + 9  # each training and validation image once


def test_a_multilabel_run_trains_on_features_with_the_same_results(tmp_path):
    # Label sets from colours: an image is "warm" and/or "bright" (or neither).
    from PIL import Image

    rows, rng = ["path,labels"], torch.Generator().manual_seed(0)
    folder = tmp_path / "ml"
    folder.mkdir()
    for i in range(45):
        red, green = (int(v) for v in torch.randint(0, 2, (2,), generator=rng))
        Image.new("RGB", (16, 16), (200 * red + 30, 200 * green + 30, 60)).save(
            folder / f"{i}.png")
        names = [n for n, on in (("warm", red), ("bright", green)) if on]
        rows.append(f"ml/{i}.png,{';'.join(names)}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    settings = dict(model="tiny-backbone", epochs=3, freeze_backbone=True, augment="none",
                    ema=False, lr=0.05, select_metric="map")
    results, seen = [], []
    for name, cache in (("cached", True), ("images", False)):
        SEEN["images"] = 0
        config = tiny_config(tmp_path / "labels.csv", tmp_path / "runs", name=name,
                             cache_features=cache, **settings)
        results.append(fit(config, Notes()))
        seen.append(SEEN["images"])
    assert results[0].history[0]["val_map"] > 0  # multi-label metrics, not accuracy only
    assert seen[0] < seen[1]  # the backbone ran once per image with the cache
    for a, b in zip(results[0].history, results[1].history, strict=True):
        for key in ("train_loss", "val_loss", "val_map", "val_macro_f1"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
