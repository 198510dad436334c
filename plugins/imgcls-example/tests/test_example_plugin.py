"""The example plugin's own tests: its components work and imgcls finds them."""

from __future__ import annotations

import imgcls_example
import torch

from imgcls.registry import get_augmentation, get_dataset, get_model


def test_tiny_cnn_shapes():
    model = imgcls_example.build_tiny_cnn(4)
    assert model(torch.rand(3, 3, 32, 32)).shape == (3, 4)


def test_invert_always_and_never():
    image = torch.full((3, 8, 8), 10, dtype=torch.uint8)
    assert torch.equal(imgcls_example.invert(1.0)(image), torch.full_like(image, 245))
    assert torch.equal(imgcls_example.invert(0.0)(image), image)


def test_stripes_loads_three_classes(tmp_path):
    loaded = imgcls_example.load_stripes(str(tmp_path), per_class=5)
    assert loaded.classes == ["diagonal", "horizontal", "vertical"]
    assert len(loaded.train) == 15


def test_registered_through_entry_point():
    assert get_model("tiny-cnn").plugin == "example"
    assert get_augmentation("invert").plugin == "example"
    assert get_dataset("stripes").plugin == "example"
