"""Shared fixtures: an isolated cache, tiny generated data sets, one trained model.

Helpers that tests import live in helpers.py, not here."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgcls.train import TrainConfig, fit

from .helpers import TINY_SHAPES, write_class_folders
from .outputs_fixtures import tiny  # noqa: F401 (the tests/test_outputs_*.py fixture)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep generated data and caches out of the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("IMGCLS_CACHE_DIR", str(tmp_path_factory.mktemp("imgcls-cache")))
    yield
    mp.undo()


@pytest.fixture
def one_torch_thread():
    """One torch thread for this test even when OMP_NUM_THREADS asks for more (see the
    root conftest.py): training tests on 2 shared cores run several times faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "colours",
                               {"red": (220, 30, 30), "green": (30, 200, 40)}, per_class=12)


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
