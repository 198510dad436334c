"""Keep the plugin's tests off the user's caches (imgcls's and the Hugging Face one)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(tmp_path_factory.mktemp("imgcls-cache")))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
