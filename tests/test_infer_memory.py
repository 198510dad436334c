"""Memory stays flat: 20,000 files take no more peak RSS than 2,000 (plus a small margin).

benchmarks/inference_memory.py prints the same measurement; there the growth
from 2,000 to 20,000 paths measured +0.3 to +0.6 MiB (once +11.8 MiB) on a
process of about 865 MiB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MARGIN_MIB = 16.0
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from inference_memory import peak_rss_mib  # noqa: E402 - the benchmark's own measurement


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units differ")
def test_peak_memory_does_not_grow_with_the_number_of_files(exported, tmp_path):
    rng = np.random.default_rng(0)
    images = []
    for i in range(200):
        path = tmp_path / f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    peaks = {}
    for count in (2000, 20000):
        listing = tmp_path / f"list_{count}.txt"
        listing.write_text("".join(images[i % len(images)] + "\n" for i in range(count)))
        out = tmp_path / f"preds_{count}.csv"
        peaks[count] = peak_rss_mib([sys.executable, "-m", "imgcls", "infer", str(exported),
                                     f"@{listing}", "-o", str(out)])
        assert len(out.read_text().splitlines()) == count + 1  # each path classified once
    assert peaks[20000] <= peaks[2000] + MARGIN_MIB, peaks
