"""Built-in models: the Keras tutorial's CNN, its deeper 128px variant, VGG-BN and small ResNets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from imgcls import hookimpl
from imgcls.specs import ModelSpec, Preprocess

# The tutorial rescales pixels by 1/255 and does no mean/std normalisation.
TUTORIAL_64 = Preprocess(size=(64, 64), resize="stretch")
TUTORIAL_128 = Preprocess(size=(128, 128), resize="stretch")
# Networks with BatchNorm train best on standardised inputs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STANDARD_64 = Preprocess(size=(64, 64), resize="stretch", mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _after_blocks(size: int, blocks: int) -> int:
    """Spatial size after ``blocks`` of (3x3 valid conv, 2x2 max-pool)."""
    for _ in range(blocks):
        size = (size - 2) // 2
    return size


def _conv_block(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel_size=3), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


def _flatten_size(channels: int, image_size: tuple[int, int], blocks: int) -> int:
    h, w = (_after_blocks(s, blocks) for s in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image size {image_size} is too small for {blocks} conv+pool blocks")
    return channels * h * w


def keras_init(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases, as Keras initialises the tutorial's layers."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def build_basic_cnn(
    num_classes: int, image_size: tuple[int, int] = (64, 64), hidden: int = 128
) -> nn.Module:
    """Conv 32 + pool, conv 32 + pool, flatten, dense 128, dense num_classes."""
    return keras_init(nn.Sequential(
        *_conv_block(3, 32),
        *_conv_block(32, 32),
        nn.Flatten(),
        nn.Linear(_flatten_size(32, image_size, 2), int(hidden)),
        nn.ReLU(inplace=True),
        nn.Linear(int(hidden), num_classes),
    ))


def build_deep_cnn(
    num_classes: int,
    image_size: tuple[int, int] = (128, 128),
    hidden: int = 64,
    dropout: float = 0.5,
) -> nn.Module:
    """Conv 32/32/64 each followed by pooling, dense 64, dropout, dense num_classes."""
    return keras_init(nn.Sequential(
        *_conv_block(3, 32),
        *_conv_block(32, 32),
        *_conv_block(32, 64),
        nn.Flatten(),
        nn.Linear(_flatten_size(64, image_size, 3), int(hidden)),
        nn.ReLU(inplace=True),
        nn.Dropout(float(dropout)),
        nn.Linear(int(hidden), num_classes),
    ))


def _conv_bn(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


def build_vgg_bn(
    num_classes: int,
    image_size: tuple[int, int] = (64, 64),
    width: float = 1.0,
    depth: int = 4,
    dropout: float = 0.3,
) -> nn.Module:
    """VGG-style blocks (two 3x3 conv+BN+ReLU, then max-pool), global average pool, dropout."""
    depth = int(depth)
    if not 1 <= depth <= 6:
        raise ValueError(f"vgg-bn depth must be 1 to 6 blocks, got {depth}")
    if min(image_size) < 2 ** depth:
        raise ValueError(f"image size {image_size} is too small for {depth} pooling blocks")
    layers: list[nn.Module] = []
    in_ch = 3
    for block in range(depth):
        out_ch = max(8, round(16 * float(width) * 2 ** min(block, 4)))
        layers += [*_conv_bn(in_ch, out_ch), *_conv_bn(out_ch, out_ch), nn.MaxPool2d(2)]
        in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(float(dropout)),
               nn.Linear(in_ch, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_ch, out_ch, stride),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def build_resnet_s(
    num_classes: int,
    image_size: tuple[int, int] = (64, 64),
    depth: int = 20,
    width: float = 1.0,
    stem_stride: int = 2,
) -> nn.Module:
    """CIFAR-style ResNet (He et al. 2016): depth 6n+2, stages of 16/32/64 x width channels.

    ``stem_stride=2`` halves 64px inputs first, so the stages run at CIFAR's 32px cost.
    """
    depth = int(depth)
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet-s depth must be 6n+2 (8, 14, 20, 32, 44, 56 ...), got {depth}")
    if min(image_size) < 4 * int(stem_stride):
        raise ValueError(f"image size {image_size} is too small for resnet-s")
    blocks = (depth - 2) // 6
    widths = [max(4, round(c * float(width))) for c in (16, 32, 64)]
    layers: list[nn.Module] = [*_conv_bn(3, widths[0], int(stem_stride))]
    in_ch = widths[0]
    for stage, out_ch in enumerate(widths):
        for block in range(blocks):
            layers.append(BasicBlock(in_ch, out_ch, 2 if stage > 0 and block == 0 else 1))
            in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, num_classes)]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def _from_end(offset: int) -> Callable[[nn.Sequential], str]:
    """The name of the ``offset``-th module from the end (for depths set by an option)."""
    return lambda model: str(len(model) - offset)


# The CAM layer is each network's last conv block, after its activation: the ReLU of the
# last conv (the pool after it halves the map), vgg-bn's last ReLU, resnet-s's last block.
BUILT_IN: tuple[tuple[str, Callable[..., nn.Module], Preprocess, int, Any, str], ...] = (
    ("basic-cnn", build_basic_cnn, TUTORIAL_64, 10, "4",
     "The Keras tutorial CNN: two conv32+pool blocks, dense 128 (64x64 input)."),
    ("deep-cnn", build_deep_cnn, TUTORIAL_128, 22, "7",
     "The tutorial's deeper variant: conv 32/32/64 + pool, dense 64, dropout 0.5 (128x128)."),
    ("vgg-bn", build_vgg_bn, STANDARD_64, 16, _from_end(6),
     "VGG-style conv+BN blocks, global average pooling, dropout; options width, depth, dropout."),
    ("resnet-s", build_resnet_s, STANDARD_64, 16, _from_end(4),
     "Small-image ResNet (CIFAR-style, depth 6n+2: 8/20/56); options depth, width, stem_stride."),
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for name, build, preprocess, min_size, cam_layer, description in BUILT_IN:
        register(ModelSpec(name=name, build=build, preprocess=preprocess,
                           description=description, min_size=min_size, cam_layer=cam_layer))
