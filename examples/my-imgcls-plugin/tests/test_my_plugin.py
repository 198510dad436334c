"""imgcls finds each component of the plugin, and each works."""

import torch
from PIL import Image

from imgcls.registry import get_augmentation, get_dataset, get_model


def test_the_model_gives_one_logit_per_class():
    spec = get_model("convmixer").spec
    model = spec.build(3, image_size=spec.input_size)
    assert model(torch.rand(2, 3, *spec.input_size)).shape == (2, 3)


def test_posterize_keeps_the_top_bits():
    posterize = get_augmentation("posterize").spec.build(bits=2, p=1.0)
    image = torch.full((3, 4, 4), 0b10111111, dtype=torch.uint8)
    assert (posterize(image) == 0b10000000).all()


def test_labels_come_from_file_names(tmp_path):
    for name in ("cat.1.png", "cat.2.png", "dog.1.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    loaded = get_dataset("filenames").spec.load(str(tmp_path))
    assert loaded.classes == ["cat", "dog"]
    assert [label for _, label in loaded.train] == [0, 0, 1]
