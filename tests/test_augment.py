"""Augmentations: parsing, presets, every built-in on images and batches, fusion, mixing."""

from __future__ import annotations

import pytest
import torch

from imgcls.data import augment
from imgcls.data.augment import (
    PRESETS,
    BatchedTransform,
    Pipeline,
    apply_to_batch,
    build_pipeline,
    parse_augment,
    warp,
)
from imgcls.errors import ConfigError, UnknownNameError
from imgcls.registry import list_augmentations

SAMPLE_LEVEL = ["flip", "vflip", "shear", "zoom", "rotate", "translate", "random-resized-crop",
                "color-jitter", "grayscale", "blur", "erasing", "randaugment", "trivialaugment"]


def noise_batch(n: int = 6, size: int = 24, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def test_every_documented_augmentation_is_registered():
    names = {entry.spec.name for entry in list_augmentations()}
    assert set(SAMPLE_LEVEL) | {"mixup", "cutmix"} <= names


def test_presets():
    assert set(PRESETS) >= {"none", "seed", "light", "strong"}
    assert parse_augment("seed") == [("flip", {}), ("shear", {"": 0.2}), ("zoom", {"": 0.2})]
    assert build_pipeline("none").sample == [] and build_pipeline("").batch == []
    for name in ("seed", "light", "strong"):
        pipeline = build_pipeline(name)
        assert pipeline.sample and pipeline.apply_batch(noise_batch()).shape == (6, 3, 24, 24)
    assert [type(t).__name__ for t in build_pipeline("strong").batch] == ["CutMix"]
    assert len(build_pipeline("light,mixup").batch) == 1  # presets compose with steps


def test_parameters_are_parsed_and_checked():
    steps = parse_augment("color-jitter:brightness=0.3:hue=0.05,random-resized-crop=0.5")
    assert steps == [("color-jitter", {"brightness": 0.3, "hue": 0.05}),
                     ("random-resized-crop", {"": 0.5})]
    jitter = build_pipeline("color-jitter=0.3:hue=0.1").sample[0]
    assert (jitter.brightness, jitter.saturation, jitter.hue) == (0.3, 0.3, 0.1)
    assert build_pipeline("rotate=30:fill=zeros").sample[0].fill == "zeros"
    bad = ["zoom=1.5", "flip:q=1", "trivialaugment=3", "rotate:fill=wrap", "erasing:value=300",
           "flip:p"]
    for text in bad:
        with pytest.raises(ConfigError):
            build_pipeline(text)
    with pytest.raises(UnknownNameError, match="rotate"):
        build_pipeline("rotat=10")


@pytest.mark.parametrize("name", SAMPLE_LEVEL)
def test_sample_augmentations_on_one_image_and_on_a_batch(name):
    torch.manual_seed(0)
    pipeline = build_pipeline(name)
    batch = noise_batch()
    one = pipeline(batch[0])
    assert one.shape == (3, 24, 24) and one.dtype == torch.uint8
    out = pipeline.apply_batch(batch)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert not torch.equal(build_pipeline(name + ":p=1" if name in ("flip", "vflip", "grayscale",
                                                                   "blur", "erasing") else name)
                           .apply_batch(batch), batch)


@pytest.mark.parametrize("name", ["rotate", "shear", "zoom", "translate", "random-resized-crop",
                                  "color-jitter", "blur:p=1", "erasing:p=1"])
def test_each_image_of_a_batch_gets_its_own_draw(name):
    torch.manual_seed(1)
    same = noise_batch(1).repeat(8, 1, 1, 1)
    out = build_pipeline(name).apply_batch(same)
    assert len({bytes(image.numpy()) for image in out}) == 8


def test_same_seed_same_augmentation():
    batch = noise_batch()
    torch.manual_seed(5)
    first = build_pipeline("strong").apply_batch(batch)
    torch.manual_seed(5)
    assert torch.equal(first, build_pipeline("strong").apply_batch(batch))


def test_flips_are_exact():
    batch = noise_batch()
    assert torch.equal(build_pipeline("flip:p=1").apply_batch(batch), batch.flip(-1))
    assert torch.equal(build_pipeline("vflip=1").apply_batch(batch), batch.flip(-2))
    assert torch.equal(build_pipeline("flip=0").apply_batch(batch), batch)
    # Fused into one resampling, the pair is still exact: a 180 degree turn.
    assert torch.equal(build_pipeline("flip=1,vflip=1").apply_batch(batch),
                       batch.flip(-1).flip(-2))


def test_warp_moves_content_by_the_matrix():
    image = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    image[..., 4, 4] = 200
    shift = torch.eye(3)[None].clone()
    shift[0, 0, 2] = 1.0  # each output pixel samples one pixel to its right
    out = warp(image, shift, "zeros")
    assert out[0, 0, 4, 3] == 200 and out[0, 0, 4, 4] == 0
    with pytest.raises(ConfigError):
        warp(image, shift, "wrap")


def test_consecutive_geometric_steps_resample_once(monkeypatch):
    from imgcls.default_plugins import augment_ops

    calls = []

    def counting_warp(images, matrices, fill="border"):
        calls.append(fill)
        return warp(images, matrices, fill)

    monkeypatch.setattr(augment, "warp", counting_warp)
    monkeypatch.setattr(augment_ops, "warp", counting_warp)
    build_pipeline("seed").apply_batch(noise_batch())
    assert calls == ["border"]
    calls.clear()
    build_pipeline("rotate=10,color-jitter,zoom=0.1,translate=0.1").apply_batch(noise_batch())
    assert calls == ["border", "border"]  # colour between them: two resamplings
    calls.clear()
    build_pipeline("zoom=0.1:fill=zeros,translate=0.1").apply_batch(noise_batch())
    assert calls == ["zeros", "border"]  # different fills cannot share one resampling


def test_geometry_keeps_the_picture_recognisable():
    batch = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    batch[:, 0] = 250  # all red
    for name in ("rotate=20", "shear=0.2", "zoom=0.2", "translate=0.1", "random-resized-crop"):
        out = build_pipeline(name).apply_batch(batch)
        assert (out[:, 0] == 250).all(), name  # border fill: no black corners


def test_colour_augmentations():
    grey = torch.full((16, 3, 8, 8), 128, dtype=torch.uint8)
    bright = build_pipeline("color-jitter:brightness=0.5:contrast=0:saturation=0").apply_batch(grey)
    levels = bright[:, 0, 0, 0].float()
    assert (levels >= 63).all() and (levels <= 193).all() and levels.std() > 5
    assert (bright == bright[:, :1]).all()  # a grey image stays grey
    colour = noise_batch(8)
    gray = build_pipeline("grayscale=1").apply_batch(colour)
    assert (gray[:, 0] == gray[:, 1]).all() and (gray[:, 1] == gray[:, 2]).all()
    hue = build_pipeline("color-jitter=0:hue=0.5").apply_batch(colour)
    assert not torch.equal(hue, colour)


def test_colour_jitter_matches_torchvision_where_nothing_clips(monkeypatch):
    from torchvision.transforms.v2 import functional as TF

    from imgcls.default_plugins import augment_ops

    factors = iter([1.1, 0.8, 1.3])
    monkeypatch.setattr(augment_ops, "_uniform",
                        lambda n, low, high, device=None: torch.full((n,), next(factors)))
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(90, 160, (1, 3, 16, 16), dtype=torch.uint8, generator=generator)
    ours = augment_ops.ColorJitter(0.2, 0.2, 0.4).apply(image)
    unit = image.float() / 255  # float, so torchvision does not round between its steps
    theirs = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(unit, 1.1), 0.8), 1.3)
    assert (ours.float() - theirs * 255).abs().max() <= 0.51


def test_blur_smooths_and_erasing_blanks_a_box():
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 255
    batch = checker.to(torch.uint8).expand(16, 3, 32, 32).contiguous()
    torch.manual_seed(0)
    blurred = build_pipeline("blur=2:p=1").apply_batch(batch).float()
    spread = blurred.std((1, 2, 3)) / batch.float().std()
    assert (spread <= 1.01).all() and spread.mean() < 0.75  # sigma is drawn in [0.1, 2]
    assert torch.equal(build_pipeline("blur:p=0").apply_batch(batch), batch)
    full = torch.full((20, 3, 32, 32), 200, dtype=torch.uint8)
    erased = build_pipeline("erasing=1").apply_batch(full)
    fraction = (erased[:, 0] == 0).float().mean((1, 2))
    assert (fraction >= 0.01).all() and (fraction <= 0.4).all()
    assert ((erased == 0) | (erased == 200)).all()


def test_plugin_style_per_image_transforms_still_work_in_batches():
    calls = []

    def invert(image: torch.Tensor) -> torch.Tensor:
        calls.append(image.shape)
        return 255 - image

    pipeline = Pipeline(sample=[invert, build_pipeline("flip=1").sample[0]])
    batch = noise_batch(3)
    assert torch.equal(pipeline.apply_batch(batch), (255 - batch).flip(-1))
    assert calls == [(3, 24, 24)] * 3


def test_one_dispatch_tells_batched_from_per_image_transforms():
    calls = []

    def per_image(image: torch.Tensor) -> torch.Tensor:
        calls.append(image.shape)
        return image.flip(-1)

    class Invert(BatchedTransform):
        def apply(self, batch: torch.Tensor) -> torch.Tensor:
            calls.append(batch.shape)
            return 255 - batch

    batch = noise_batch(4)
    assert torch.equal(apply_to_batch(per_image, batch), batch.flip(-1))
    assert calls == [(3, 24, 24)] * 4
    calls.clear()
    pipeline = Pipeline(sample=[Invert()])
    assert pipeline.batched and isinstance(build_pipeline("flip").sample[0], BatchedTransform)
    assert torch.equal(apply_to_batch(pipeline, batch), 255 - batch)
    assert torch.equal(Invert()(batch[0]), 255 - batch[0])  # one CHW image: a batch of one
    assert calls == [(4, 3, 24, 24), (1, 3, 24, 24)]
    assert apply_to_batch(per_image, batch[:0]).shape == (0, 3, 24, 24)


def test_a_pipeline_on_one_image_is_the_pipeline_on_a_batch_of_one():
    image = noise_batch(1)[0]
    pipeline = build_pipeline("rotate=20,zoom=0.2,color-jitter")
    torch.manual_seed(3)
    alone = pipeline(image)
    torch.manual_seed(3)
    assert alone.shape == image.shape and torch.equal(alone, pipeline.apply_batch(image[None])[0])


def test_the_training_loop_mixes_through_the_pipeline():
    from imgcls.train.config import TrainConfig
    from imgcls.train.loop import soft_targets
    from imgcls.train.optim import TrainLoss

    images, labels = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    loss_fn = TrainLoss.build(TrainConfig(), labels, 3, torch.device("cpu"))
    unmixed, hard = soft_targets(images, labels, build_pipeline("flip"), loss_fn)
    assert unmixed is images and hard is labels  # no batch-level step: hard labels
    pipeline = build_pipeline("mixup=1.0,cutmix")
    torch.manual_seed(5)
    mixed, soft = soft_targets(images, labels, pipeline, loss_fn)
    torch.manual_seed(5)
    expected, expected_soft = pipeline.mix(images, loss_fn.one_hot(labels))
    assert torch.equal(mixed, expected) and torch.equal(soft, expected_soft)


def one_hot(labels: list[int], classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), classes).float()


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_batch_mixing(name):
    torch.manual_seed(0)
    pipeline = build_pipeline(f"{name}=1.0")
    assert pipeline.sample == [] and len(pipeline.batch) == 1
    # Image i is filled with the value i and is the only one of class i, so every
    # pixel and every target row says exactly where its content came from.
    images = torch.stack([torch.full((3, 16, 16), float(i)) for i in range(8)])
    targets = one_hot(list(range(8)), 8)
    mixed, soft = pipeline.mix(images, targets)
    assert mixed.shape == images.shape and soft.shape == targets.shape
    assert torch.allclose(soft.sum(1), torch.ones(8))
    assert not torch.equal(mixed, images) and (soft.max(1).values < 1).any()
    own = soft[torch.arange(8), torch.arange(8)]
    if name == "mixup":
        expected = (soft * torch.arange(8.0)).sum(1)
        assert torch.allclose(mixed[:, 0, 0, 0], expected, atol=1e-5)
        assert torch.allclose(mixed.std((1, 2, 3)), torch.zeros(8), atol=1e-5)
    else:
        pasted = (mixed != images).float().mean((1, 2, 3))
        assert torch.allclose(1 - own, pasted, atol=1e-6)


def test_batch_mixing_edge_cases():
    images, targets = torch.rand(1, 3, 8, 8), one_hot([1], 2)
    for name in ("mixup", "cutmix"):
        out, soft = build_pipeline(name).mix(images, targets)
        assert torch.equal(out, images) and torch.equal(soft, targets)  # nothing to mix with
        batch, labels = torch.rand(4, 3, 8, 8), one_hot([0, 1, 0, 1], 2)
        out, soft = build_pipeline(f"{name}:p=0").mix(batch, labels)
        assert torch.equal(out, batch) and torch.equal(soft, labels)


@pytest.mark.parametrize("size", [(64, 64), (30, 50), (1, 7)])
def test_sampling_grid_is_torchs_affine_grid(size):
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.affine_grid(theta, [5, 3, *size], align_corners=False)
    assert torch.allclose(augment._sampling_grid(theta, *size), expected, atol=1e-5)
