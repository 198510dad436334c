"""Built-in augmentations, registered through the same hook as any plugin.

Sample-level ones act on uint8 CHW images (or whole NCHW batches, see
imgcls.data.augment); mixup and cutmix act on normalised float batches and soft targets.
"""

from __future__ import annotations

from collections.abc import Callable

from torchvision.transforms import v2

from imgcls import hookimpl
from imgcls.specs import AugmentationSpec

from .augment_ops import (
    Blur,
    ColorJitter,
    CutMix,
    Erasing,
    Flip,
    Grayscale,
    MixUp,
    RandomResizedCrop,
    Rotate,
    Shear,
    Translate,
    Zoom,
)


def flip(p: float = 0.5) -> Flip:
    return Flip(p)


def vflip(p: float = 0.5) -> Flip:
    return Flip(p, vertical=True)


def color_jitter(strength: float = 0.2, brightness: float | None = None,
                 contrast: float | None = None, saturation: float | None = None,
                 hue: float = 0.0) -> ColorJitter:
    """``strength`` sets brightness, contrast and saturation unless given one by one."""
    def pick(value: float | None) -> float:
        return strength if value is None else value

    return ColorJitter(pick(brightness), pick(contrast), pick(saturation), hue)


def randaugment(magnitude: int = 9, num_ops: int = 2) -> Callable:
    if not 0 <= int(magnitude) <= 30 or int(num_ops) < 1:
        raise ValueError("magnitude must be in [0, 30] and num_ops at least 1")
    return v2.RandAugment(num_ops=int(num_ops), magnitude=int(magnitude))


def trivialaugment() -> Callable:
    return v2.TrivialAugmentWide()


_GEOMETRY = " Options: p (probability, default 1), fill=border|zeros|reflection."

BUILT_IN = (
    AugmentationSpec("flip", flip, "Random horizontal flip (p=0.5).", primary="p"),
    AugmentationSpec("vflip", vflip, "Random vertical flip (p=0.5).", primary="p"),
    AugmentationSpec("shear", Shear, "Random horizontal shear; value is the Keras shear_range "
                     "intensity (angle up to atan(value))." + _GEOMETRY, primary="intensity"),
    AugmentationSpec("zoom", Zoom, "Random zoom by a factor in [1-r, 1+r]; value is Keras' "
                     "zoom_range." + _GEOMETRY, primary="range"),
    AugmentationSpec("rotate", Rotate, "Random rotation up to +-degrees." + _GEOMETRY,
                     primary="degrees"),
    AugmentationSpec("translate", Translate, "Random shift up to +-fraction of the size."
                     + _GEOMETRY, primary="fraction"),
    AugmentationSpec("random-resized-crop", RandomResizedCrop,
                     "Crop scale..max_scale of the area (default 0.08..1), aspect "
                     "min_ratio..max_ratio (3/4..4/3), resize back." + _GEOMETRY,
                     primary="scale"),
    AugmentationSpec("color-jitter", color_jitter,
                     "Random brightness/contrast/saturation in [1-x, 1+x] (value sets all "
                     "three, default 0.2) and hue shift up to +-hue turns.", primary="strength"),
    AugmentationSpec("grayscale", Grayscale, "Convert to grayscale with probability p (0.1).",
                     primary="p"),
    AugmentationSpec("blur", Blur, "Gaussian blur, sigma in [0.1, sigma] (1.5), probability "
                     "p (0.5).", primary="sigma"),
    AugmentationSpec("erasing", Erasing, "Random erasing of 2%..max_scale (33%) of the image "
                     "with probability p (0.25); value=0..255 or random.", primary="p"),
    AugmentationSpec("randaugment", randaugment, "RandAugment (torchvision): num_ops (2) "
                     "random operations at magnitude (9, of 30). Per image, not batched.",
                     primary="magnitude"),
    AugmentationSpec("trivialaugment", trivialaugment, "TrivialAugmentWide (torchvision): one "
                     "random operation at a random magnitude. Per image, not batched."),
    AugmentationSpec("mixup", MixUp, "Batch level: blend image pairs and their targets, "
                     "weight ~ Beta(alpha, alpha) (alpha 0.2); p per batch (1).",
                     primary="alpha", level="batch"),
    AugmentationSpec("cutmix", CutMix, "Batch level: paste a box from another image, targets "
                     "by area; box ~ Beta(alpha, alpha) (alpha 1); p per batch (1).",
                     primary="alpha", level="batch"),
)


@hookimpl
def register_augmentations(register: Callable[[AugmentationSpec], None]) -> None:
    for spec in BUILT_IN:
        register(spec)
