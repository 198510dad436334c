"""Shared fixtures: an isolated cache, tiny generated data sets, one trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.train import TrainConfig, fit


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep generated data and caches out of the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("IMGCLS_CACHE_DIR", str(tmp_path_factory.mktemp("imgcls-cache")))
    yield
    mp.undo()


def write_class_folders(root: Path, classes: dict[str, tuple[int, int, int]], per_class: int,
                        size: int = 40, seed: int = 0) -> Path:
    """Solid-ish colour images, one folder per class: trivially learnable."""
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-20, 21, (size, size, 3))
            pixels = np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "colours",
                               {"red": (220, 30, 30), "green": (30, 200, 40)}, per_class=12)


TINY_SHAPES = {"classes": 3, "train_per_class": 200, "val_per_class": 30, "size": 64}


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, _isolated_cache):
    """A basic-cnn trained briefly on tiny shapes; shared by export and infer tests."""
    out = tmp_path_factory.mktemp("runs")
    config = TrainConfig(model="basic-cnn", data="shapes", data_options=dict(TINY_SHAPES),
                         epochs=6, batch_size=32, lr=2e-3, augment="none", out=str(out),
                         name="tiny")
    return fit(config)


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imgcls.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(trained.best_path, path)
    return path
