"""Built-in models: the Keras tutorial's CNN and its deeper 128px variant."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from imgcls import hookimpl
from imgcls.specs import ModelSpec, Preprocess

# The tutorial rescales pixels by 1/255 and does no mean/std normalisation.
TUTORIAL_64 = Preprocess(size=(64, 64), resize="stretch")
TUTORIAL_128 = Preprocess(size=(128, 128), resize="stretch")


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


BUILT_IN: tuple[tuple[str, Callable[..., nn.Module], Preprocess, int, str], ...] = (
    ("basic-cnn", build_basic_cnn, TUTORIAL_64, 10,
     "The Keras tutorial CNN: two conv32+pool blocks, dense 128 (64x64 input)."),
    ("deep-cnn", build_deep_cnn, TUTORIAL_128, 22,
     "The tutorial's deeper variant: conv 32/32/64 + pool, dense 64, dropout 0.5 (128x128)."),
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for name, build, preprocess, min_size, description in BUILT_IN:
        register(ModelSpec(name=name, build=build, preprocess=preprocess,
                           description=description, min_size=min_size))
