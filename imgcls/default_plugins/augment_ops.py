"""The built-in augmentations' tensor code, batched: one call augments a whole batch.

Every sample-level class accepts one uint8 CHW image or a uint8 NCHW batch
and draws its random parameters independently per image, from torch's global
generator (so ``--seed`` and DataLoader worker seeding apply); the CHW-or-NCHW
call comes from :class:`~imgcls.data.augment.BatchedTransform`. The pixels may
live on any device (training augments on the GPU when there is one): the small
random parameters are drawn on the CPU, so a seed gives the same draws on every
device, and are moved to the pixels' device. Geometric ones
expose ``affine_matrices`` so that consecutive ones resample only once.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from imgcls.data.augment import FILLS, BatchedTransform, warp

_GRAY = torch.tensor([0.299, 0.587, 0.114])


def _uniform(n: int, low: float, high: float, device: torch.device | None = None
             ) -> torch.Tensor:
    return (torch.rand(n) * (high - low) + low).to(device)


def _chance(n: int, p: float, device: torch.device) -> torch.Tensor:
    """n booleans, each True with probability ``p``, on ``device``."""
    return (torch.rand(n) < p).to(device)


def _check(name: str, value: float, low: float, high: float) -> float:
    value = float(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


# --------------------------------------------------------------------------- geometry


class RandomAffine(BatchedTransform):
    """Applied to each image with probability ``p``; subclasses draw the matrices."""

    def __init__(self, p: float = 1.0, fill: str = "border") -> None:
        self.p = _check("p", p, 0.0, 1.0)
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
        self.fill = fill

    def draw(self, n: int, height: int, width: int) -> torch.Tensor:
        raise NotImplementedError

    def affine_matrices(self, n: int, height: int, width: int) -> torch.Tensor:
        matrices = self.draw(n, height, width)
        if self.p < 1.0:
            chosen = (torch.rand(n) < self.p).numpy()  # drawn by torch: seeded runs repeat
            matrices = torch.from_numpy(np.where(chosen[:, None, None], matrices.numpy(),
                                                 np.eye(3, dtype=np.float32)))
        return matrices

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        n, _, height, width = batch.shape
        return warp(batch, self.affine_matrices(n, height, width), self.fill)


def _matrices(n: int, a: torch.Tensor | float = 1.0, b: torch.Tensor | float = 0.0,
              c: torch.Tensor | float = 0.0, d: torch.Tensor | float = 0.0,
              e: torch.Tensor | float = 1.0, f: torch.Tensor | float = 0.0) -> torch.Tensor:
    """n matrices [[a, b, c], [d, e, f], [0, 0, 1]] from scalars or length-n tensors."""
    out = np.zeros((n, 3, 3), dtype=np.float32)  # numpy: cheaper per op on tiny arrays
    for (row, col), value in zip(((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)),
                                 (a, b, c, d, e, f), strict=True):
        out[:, row, col] = value.numpy() if isinstance(value, torch.Tensor) else value
    out[:, 2, 2] = 1.0
    return torch.from_numpy(out)


class Flip(RandomAffine):
    """Mirror left-right (or top-bottom) with probability ``p``; exact when not fused."""

    def __init__(self, p: float = 0.5, vertical: bool = False) -> None:
        super().__init__(p)
        self.vertical = vertical

    def draw(self, n: int, height: int, width: int) -> torch.Tensor:
        return _matrices(n, e=-1.0) if self.vertical else _matrices(n, a=-1.0)

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        chosen = _chance(len(batch), self.p, batch.device)[:, None, None, None]
        return torch.where(chosen, batch.flip(-2 if self.vertical else -1), batch)


class Shear(RandomAffine):
    """Horizontal shear by an angle up to atan(intensity) either way."""

    def __init__(self, intensity: float = 0.2, **kw) -> None:
        super().__init__(**kw)
        self.intensity = _check("shear intensity", intensity, 0.0, 10.0)

    def draw(self, n: int, height: int, width: int) -> torch.Tensor:
        limit = math.atan(self.intensity)
        return _matrices(n, b=torch.tan(_uniform(n, -limit, limit)))


class Zoom(RandomAffine):
    """Scale by a factor in [1 - range, 1 + range] about the centre."""

    def __init__(self, range: float = 0.2, **kw) -> None:
        super().__init__(**kw)
        self.range = _check("zoom range", range, 0.0, 0.95)

    def draw(self, n: int, height: int, width: int) -> torch.Tensor:
        inverse = 1.0 / _uniform(n, 1.0 - self.range, 1.0 + self.range)
        return _matrices(n, a=inverse, e=inverse)


class Rotate(RandomAffine):
    """Rotate by up to ``degrees`` either way about the centre."""

    def __init__(self, degrees: float = 15.0, **kw) -> None:
        super().__init__(**kw)
        self.degrees = _check("degrees", degrees, 0.0, 180.0)

    def draw(self, n: int, height: int, width: int) -> torch.Tensor:
        angle = torch.deg2rad(_uniform(n, -self.degrees, self.degrees))
        cos, sin = torch.cos(angle), torch.sin(angle)
        return _matrices(n, a=cos, b=-sin, d=sin, e=cos)


class Translate(RandomAffine):
    """Shift by up to ``fraction`` of the width and height either way."""

    def __init__(self, fraction: float = 0.1, **kw) -> None:
        super().__init__(**kw)
        self.fraction = _check("translate fraction", fraction, 0.0, 1.0)

    def draw(self, n: int, height: int, width: int) -> torch.Tensor:
        shift_x = _uniform(n, -self.fraction, self.fraction) * width
        shift_y = _uniform(n, -self.fraction, self.fraction) * height
        return _matrices(n, c=shift_x, f=shift_y)


class RandomResizedCrop(RandomAffine):
    """Crop a random area (``scale`` to ``max_scale`` of the image, aspect ratio
    3/4..4/3 by default) and resize it back to the full size, as timm and
    torchvision do; sides that would exceed the image are clipped to it."""

    def __init__(self, scale: float = 0.08, max_scale: float = 1.0, min_ratio: float = 0.75,
                 max_ratio: float = 4 / 3, **kw) -> None:
        super().__init__(**kw)
        self.scale = _check("scale", scale, 0.01, 1.0)
        self.max_scale = _check("max_scale", max_scale, self.scale, 1.0)
        self.min_ratio = _check("min_ratio", min_ratio, 0.1, 10.0)
        self.max_ratio = _check("max_ratio", max_ratio, self.min_ratio, 10.0)

    def draw(self, n: int, height: int, width: int) -> torch.Tensor:
        area = _uniform(n, self.scale, self.max_scale)
        ratio = torch.exp(_uniform(n, math.log(self.min_ratio), math.log(self.max_ratio)))
        crop_w = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the full size
        crop_h = torch.sqrt(area / ratio).clamp(max=1.0)
        centre_x = (torch.rand(n) - 0.5) * (1.0 - crop_w) * width
        centre_y = (torch.rand(n) - 0.5) * (1.0 - crop_h) * height
        return _matrices(n, a=crop_w, c=centre_x, e=crop_h, f=centre_y)


# --------------------------------------------------------------------------- colour


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Float NCHW RGB -> N1HW luma (ITU-R 601, as torchvision and Pillow)."""
    return (x * _GRAY.to(x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


class ColorJitter(BatchedTransform):
    """Random brightness, contrast and saturation factors in [1 - x, 1 + x] and a hue
    shift of up to ``hue`` turns (a rotation in YIQ colour space), in that order.

    All four are linear in RGB, so they are composed into one 3x3 matrix and offset
    per image and applied in one pass, clipping once at the end (torchvision clips
    after each step; the results differ only where a step overshoots 0..255).
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0) -> None:
        self.brightness = _check("brightness", brightness, 0.0, 1.0)
        self.contrast = _check("contrast", contrast, 0.0, 1.0)
        self.saturation = _check("saturation", saturation, 0.0, 1.0)
        self.hue = _check("hue", hue, 0.0, 0.5)

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = batch.shape
        x = batch.float().reshape(n, channels, height * width)
        matrix, offset = self._colour_maps(n, x.mean(2), batch.device)
        out = torch.baddbmm(offset[:, :, None], matrix, x).clamp_(0, 255).round_()
        return out.to(torch.uint8).reshape(batch.shape)

    def _colour_maps(self, n: int, mean_rgb: torch.Tensor, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: pixel -> matrix @ pixel + offset."""
        matrix = torch.eye(3, device=device).repeat(n, 1, 1)
        offset, gray = torch.zeros(n, 3, device=device), _GRAY.to(device)
        if self.brightness:
            factor = _uniform(n, 1 - self.brightness, 1 + self.brightness, device)[:, None]
            matrix, offset = matrix * factor[:, :, None], offset * factor
        if self.contrast:
            factor = _uniform(n, 1 - self.contrast, 1 + self.contrast, device)[:, None]
            mean = ((matrix @ mean_rgb[:, :, None])[:, :, 0] + offset) @ gray
            matrix = matrix * factor[:, :, None]
            offset = offset * factor + (1 - factor) * mean[:, None]
        if self.saturation:
            factor = _uniform(n, 1 - self.saturation, 1 + self.saturation, device)[:, None, None]
            towards_gray = (factor * torch.eye(3, device=device)
                            + (1 - factor) * gray.expand(3, 3))
            matrix, offset = towards_gray @ matrix, (towards_gray @ offset[:, :, None])[:, :, 0]
        if self.hue:
            rotation = _hue_matrices(_uniform(n, -self.hue, self.hue)).to(device)
            matrix, offset = rotation @ matrix, (rotation @ offset[:, :, None])[:, :, 0]
        return matrix, offset


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _hue_matrices(turns: torch.Tensor) -> torch.Tensor:
    angle = turns * 2 * math.pi
    rotation = torch.zeros(len(turns), 3, 3)
    rotation[:, 0, 0] = 1.0
    rotation[:, 1, 1] = rotation[:, 2, 2] = torch.cos(angle)
    rotation[:, 1, 2] = -torch.sin(angle)
    rotation[:, 2, 1] = torch.sin(angle)
    return torch.linalg.inv(_YIQ) @ rotation @ _YIQ


def _on_some(batch: torch.Tensor, p: float, transform) -> torch.Tensor:
    """Apply ``transform`` (NCHW -> NCHW) to the images chosen with probability ``p`` only."""
    chosen = torch.rand(len(batch)) < p  # on the CPU: no device sync to test it
    if not chosen.any():
        return batch
    if chosen.all():
        return transform(batch)
    chosen = chosen.to(batch.device)
    out = batch.clone()
    out[chosen] = transform(batch[chosen])
    return out


class Grayscale(BatchedTransform):
    """Replace an image by its luma in all three channels, with probability ``p``."""

    def __init__(self, p: float = 0.1) -> None:
        self.p = _check("p", p, 0.0, 1.0)

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        return _on_some(batch, self.p, lambda chosen: _gray(chosen.float()).round_().to(
            torch.uint8).expand_as(chosen))


class Blur(BatchedTransform):
    """Gaussian blur with sigma drawn in [0.1, ``sigma``] pixels, with probability ``p``."""

    def __init__(self, sigma: float = 1.5, p: float = 0.5) -> None:
        self.sigma = _check("sigma", sigma, 0.1, 20.0)
        self.p = _check("p", p, 0.0, 1.0)

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        return _on_some(batch, self.p, self._blur)

    def _blur(self, batch: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = batch.shape
        radius = max(1, min(math.ceil(3 * self.sigma), height - 1, width - 1))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=batch.device)
        sigma = _uniform(n, 0.1, self.sigma, batch.device)
        kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)
        x = batch.float().reshape(1, n * channels, height, width)
        x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"),
                     kernel[:, None, None, :], groups=n * channels)
        x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                     kernel[:, None, :, None], groups=n * channels)
        return x.reshape(n, channels, height, width).round_().to(torch.uint8)


class Erasing(BatchedTransform):
    """Blank a random rectangle (2% to ``max_scale`` of the area, aspect 0.3..3.3)
    with probability ``p``; ``value`` is a grey level 0..255 or ``random`` noise."""

    def __init__(self, p: float = 0.25, max_scale: float = 0.33,
                 value: int | str = 0) -> None:
        self.p = _check("p", p, 0.0, 1.0)
        self.max_scale = _check("max_scale", max_scale, 0.02, 1.0)
        if value != "random":
            value = int(_check("value", value, 0, 255))
        self.value = value

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        n, _, height, width = batch.shape
        device = batch.device
        area = _uniform(n, 0.02, self.max_scale)
        ratio = torch.exp(_uniform(n, math.log(0.3), math.log(3.3)))
        box_h = (torch.sqrt(area * ratio) * height).clamp(1, height)
        box_w = (torch.sqrt(area / ratio) * width).clamp(1, width)
        top = (torch.rand(n) * (height - box_h)).to(device).view(-1, 1, 1)
        left = (torch.rand(n) * (width - box_w)).to(device).view(-1, 1, 1)
        box_h, box_w = box_h.to(device).view(-1, 1, 1), box_w.to(device).view(-1, 1, 1)
        rows = torch.arange(height, device=device).view(1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, width)
        inside = ((rows >= top.round()) & (rows < top + box_h)
                  & (cols >= left.round()) & (cols < left + box_w))
        mask = (inside & _chance(n, self.p, device).view(-1, 1, 1))[:, None]
        fill = (torch.randint(0, 256, batch.shape, dtype=torch.uint8).to(device)
                if self.value == "random" else torch.tensor(self.value, dtype=torch.uint8,
                                                             device=device))
        return torch.where(mask, fill, batch)


# --------------------------------------------------------------------------- batch level


class _BatchMix:
    """Shared by MixUp and CutMix: a Beta(alpha, alpha) weight, applied with probability p."""

    def __init__(self, alpha: float, p: float) -> None:
        self.alpha = _check("alpha", alpha, 1e-3, 100.0)
        self.p = _check("p", p, 0.0, 1.0)

    def skip(self, images: torch.Tensor) -> bool:
        return len(images) < 2 or bool(torch.rand(()) >= self.p)


class MixUp(_BatchMix):
    """Blend each image and its target with another image of the batch (weight ~ Beta)."""

    def __init__(self, alpha: float = 0.2, p: float = 1.0) -> None:
        super().__init__(alpha, p)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip(images):
            return images, targets
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        perm = torch.randperm(len(images), device=images.device)
        return (lam * images + (1 - lam) * images[perm],
                lam * targets + (1 - lam) * targets[perm])


class CutMix(_BatchMix):
    """Paste a box from another image of the batch; targets weighted by box area."""

    def __init__(self, alpha: float = 1.0, p: float = 1.0) -> None:
        super().__init__(alpha, p)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip(images):
            return images, targets
        height, width = images.shape[-2:]
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        box_h, box_w = round(height * math.sqrt(1 - lam)), round(width * math.sqrt(1 - lam))
        top = int(torch.randint(0, height - box_h + 1, ()))
        left = int(torch.randint(0, width - box_w + 1, ()))
        perm = torch.randperm(len(images), device=images.device)
        mixed = images.clone()
        mixed[..., top:top + box_h, left:left + box_w] = \
            images[perm][..., top:top + box_h, left:left + box_w]
        kept = 1.0 - box_h * box_w / (height * width)
        return mixed, kept * targets + (1 - kept) * targets[perm]
