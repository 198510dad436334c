"""How batches reach the model: augmentation on batches has the documented
distribution, it runs where the loop says, and each epoch reports its time split."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from imgcls.data.augment import build_pipeline
from imgcls.default_plugins.augment_ops import Flip, Shear, Zoom
from imgcls.train import fit
from imgcls.train.feed import (
    AUGMENT_PIXELS,
    OnDevice,
    augments_in_loop,
    place_model,
    wants_channels_last,
)
from imgcls.train.progress import Reporter
from imgcls.train.timing import STAGES, StageClock
from tests.helpers import colour_data, tiny_config

N = 4000  # draws: a rate's standard error is under 0.8 points


def _half_bright(n: int) -> torch.Tensor:
    """Images dark on the left half and bright on the right: a flip is visible."""
    images = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    images[..., 4:] = 255
    return images


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_flip_flips_each_image_with_probability_p(p):
    torch.manual_seed(0)
    out = Flip(p=p)(_half_bright(N))
    flipped = (out[:, 0, 0, 0] == 255).float().mean().item()
    assert abs(flipped - p) < 0.03
    # Every image is either untouched or exactly mirrored.
    assert torch.equal(out[:, :, :, :4].amax((1, 2, 3)) == 255, out[:, :, :, 4:].amin(
        (1, 2, 3)) == 0)


def test_shear_angle_is_uniform_within_atan_of_the_intensity():
    torch.manual_seed(0)
    angles = torch.atan(Shear(0.2).affine_matrices(N, 32, 32)[:, 0, 1])
    limit = math.atan(0.2)
    assert angles.abs().max() <= limit + 1e-6
    assert angles.min() < -0.95 * limit and angles.max() > 0.95 * limit
    quarters = torch.histc(angles, bins=4, min=-limit, max=limit) / N
    assert torch.all((quarters - 0.25).abs() < 0.03), quarters


def test_zoom_scales_by_a_factor_within_the_range():
    torch.manual_seed(0)
    matrices = Zoom(0.2).affine_matrices(N, 32, 32)
    factors = 1 / matrices[:, 0, 0]
    assert torch.equal(matrices[:, 0, 0], matrices[:, 1, 1])
    assert factors.min() >= 0.8 - 1e-6 and factors.max() <= 1.2 + 1e-6
    assert abs(factors.mean().item() - 1.0) < 0.01


def test_the_seed_preset_changes_most_images_and_keeps_their_size():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    out = build_pipeline("seed")(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert (out != images).flatten(1).any(1).float().mean() > 0.9


def _per_image(image: torch.Tensor) -> torch.Tensor:
    return image


def test_batched_augmentation_runs_in_the_loop_unless_workers_or_per_image_steps():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    batched = build_pipeline("seed")
    assert augments_in_loop(batched, cpu, workers=0)
    assert not augments_in_loop(batched, cpu, workers=2)  # the workers augment
    assert augments_in_loop(batched, cuda, workers=2)  # the GPU augments
    assert not augments_in_loop(build_pipeline(""), cpu, workers=0)  # nothing to do
    mixed = build_pipeline("flip")
    mixed.sample.append(_per_image)
    assert not mixed.runs_on_device and not augments_in_loop(mixed, cuda, workers=0)


def test_convolutional_models_go_channels_last_and_others_stay():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    dense = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    assert wants_channels_last(conv) and not wants_channels_last(dense)
    on_device = place_model(conv, torch.device("cpu"), build_pipeline("flip"), workers=0)
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert on_device.augment is not None
    batch = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    assert on_device(batch).shape == batch.shape


class _CountingFlip:
    """A batched step that mirrors every image and counts its calls and images."""

    batched = True

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(images))
        return images.flip(-1)


def test_the_loop_augments_several_batches_per_call_and_hands_back_the_loader_s_batches():
    flip = _CountingFlip()
    pipeline = build_pipeline("")
    pipeline.sample.append(flip)
    loader = [(torch.arange(n * 12, dtype=torch.uint8).view(n, 3, 2, 2) + i,
               torch.full((n,), i)) for i, n in enumerate([4, 4, 4, 4, 4, 4, 4, 1])]
    clock = StageClock()
    feed = OnDevice(torch.device("cpu"), pipeline, ahead=3)
    out = list(feed.batches(loader, clock, normalize=lambda images: images.float() / 2))
    assert flip.calls == [12, 12, 5]  # three calls for eight batches; the last is short
    assert len(out) == len(loader)
    for (inputs, labels), (raw, raw_labels) in zip(out, loader, strict=True):
        assert torch.equal(labels, raw_labels)
        assert torch.equal(inputs, raw.flip(-1).float() / 2)
    assert all(clock.seconds[stage] > 0 for stage in ("data", "augment", "normalise"))


def test_how_many_batches_one_augmentation_call_takes():
    cpu, seed = torch.device("cpu"), build_pipeline("seed")
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert place_model(conv, cpu, seed, workers=0, batch_pixels=32 * 64 * 64).ahead == 4
    assert AUGMENT_PIXELS == 128 * 64 * 64
    assert place_model(conv, cpu, seed, workers=0, batch_pixels=64 * 128 * 128).ahead == 1
    on_workers = place_model(conv, cpu, seed, workers=2, batch_pixels=32 * 64 * 64)
    assert on_workers.augment is None and on_workers.ahead == 1  # the workers augment


def test_stage_clock_adds_up_what_it_timed():
    clock = StageClock()
    with clock("step"):
        sum(range(10_000))
    with clock("step"), clock("data"):
        pass
    timing = clock.as_timing()
    assert set(timing) == {f"{stage}_seconds" for stage in STAGES}
    assert timing["step_seconds"] > 0 and timing["augment_seconds"] == 0


class _Epochs(Reporter):
    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        self.records.append(record)


# The throughput benchmark's compute-only steps (basic-cnn, batch 32, 64 px) in a fresh
# process, so that the allocator starts as glibc sets it; prints the page faults of ten.
STEPS_SCRIPT = """
import resource, sys
sys.path.insert(0, sys.argv[2])
from imgcls.system import reuse_freed_memory

if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
from train_throughput import ComputeOnly

compute = ComputeOnly("basic-cnn", 64, 32, steps=10)  # its first five steps warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
compute.round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again():
    """glibc by default hands a step's activations back to the kernel and faults them in
    again the next step (about 100,000 page faults per 10 basic-cnn steps, the first
    epoch at half speed); after reuse_freed_memory() the next step reuses them."""
    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", STEPS_SCRIPT, mode, str(BENCHMARKS)],
                              check=True, capture_output=True, text=True)
        return int(done.stdout.split()[-1])

    assert faults("reuse") * 10 < faults("default")


def test_fit_lets_freed_memory_be_reused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("imgcls.train.loop.reuse_freed_memory", lambda: calls.append(1))
    fit(tiny_config(colour_data(tmp_path / "data"), tmp_path / "runs", epochs=1))
    assert calls == [1]


def test_every_epoch_reports_where_its_time_went(tmp_path):
    log = _Epochs()
    fit(tiny_config(colour_data(tmp_path / "data"), tmp_path / "runs", epochs=2,
                    augment="seed"), log)
    assert len(log.records) == 2
    for record in log.records:
        stages = [record[f"{stage}_seconds"] for stage in STAGES]
        assert all(seconds >= 0 for seconds in stages)
        assert record["step_seconds"] > 0 and record["augment_seconds"] > 0
        assert sum(stages) <= record["epoch_seconds"] * 1.001


def test_the_epoch_line_shows_the_top_k_accuracy_when_k_is_below_the_classes():
    from imgcls.train.progress import epoch_line

    record = {"epoch": 3, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.75,
              "val_top3": 0.95, "val_macro_f1": 0.7, "lr": 1e-3, "images_per_second": 100.0}
    line = epoch_line(record, is_best=True)
    assert "acc 75.00% F1 0.700 top3 95.00%  lr 1.00e-03" in line and line.endswith("*best")
    del record["val_top3"]  # k covers every class: no top-k, nothing shown
    assert "top" not in epoch_line(record, is_best=False)
