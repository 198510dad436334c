"""The inference benchmark still runs end to end (on a few generated JPEGs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import inference  # the benchmark script itself


@pytest.mark.slow
def test_inference_benchmark_prints_every_figure(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(24):
        pixels = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"photo_{i:02d}.jpg", quality=90)
    assert inference.main(["--data", str(tmp_path), "--repeat", "2", "--rounds", "1",
                           "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "48 paths (24 photos x 2)" in out and "1 decode workers" in out
    for model in inference.MODELS:
        assert f"\n{model} (" in out
    assert out.count("(median of per-round ratios)") == 4  # two models x two backends
    assert out.count("onnxruntime / eager") == 2
    assert out.count("(CPU bound)") == 2
