"""One normaliser: Preprocess.apply (numpy, infer), DeviceNormaliser (torch, train) and the
exported Deployable's embedded preprocessing compute the same model input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgcls.data.loader import DeviceNormaliser, NormaliseLayer
from imgcls.export.onnx import Deployable, ExportOptions, _export_graph
from imgcls.infer.providers import make_session
from imgcls.specs import Preprocess

SETTINGS = {
    "defaults": Preprocess(size=(6, 5)),
    "bgr": Preprocess(size=(6, 5), channel_order="BGR"),
    "0-255": Preprocess(size=(6, 5), value_range=(0.0, 255.0)),
    "imagenet": Preprocess(size=(6, 5), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "all": Preprocess(size=(6, 5), mean=(120.0, 110.0, 100.0), std=(60.0, 58.0, 61.0),
                      channel_order="BGR", value_range=(0.0, 255.0)),
    "signed": Preprocess(size=(6, 5), mean=(0.1, -0.2, 0.3), std=(2.0, 0.5, 1.5),
                         value_range=(-1.0, 1.0)),
}


def pixels(n: int = 9, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 5, 3), dtype=np.uint8)


def by_hand(batch: np.ndarray, pre: Preprocess) -> np.ndarray:
    """The formula written out in float64, independent of affine()."""
    x = batch[..., ::-1] if pre.channel_order == "BGR" else batch
    lo, hi = pre.value_range
    x = lo + x.astype(np.float64) * (hi - lo) / 255.0
    x = (x - np.array(pre.mean)) / np.array(pre.std)
    return x.transpose(0, 3, 1, 2)


def flatten_model() -> torch.nn.Module:
    """A 'model' whose logits are its input, so outputs show what the model was fed."""
    return torch.nn.Flatten().eval()


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_numpy_and_torch_paths_agree(name):
    pre = SETTINGS[name]
    batch = pixels()
    numpy_input = pre.apply(batch)
    torch_input = DeviceNormaliser(pre, torch.device("cpu"))(
        torch.from_numpy(batch).permute(0, 3, 1, 2))
    assert numpy_input.dtype == np.float32 and torch_input.dtype == torch.float32
    np.testing.assert_allclose(torch_input.numpy(), numpy_input, rtol=0, atol=1e-6)
    tolerance = 1e-6 * max(1.0, float(np.abs(numpy_input).max()))
    np.testing.assert_allclose(numpy_input, by_hand(batch, pre), rtol=0, atol=tolerance)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_deployable_with_embedded_preprocessing_matches_in_torch(name):
    pre = SETTINGS[name]
    batch = pixels(seed=1)
    embedded = Deployable(flatten_model(), pre, ExportOptions(embed_preprocessing=True))
    plain = Deployable(flatten_model(), pre, ExportOptions())
    with torch.inference_mode():
        from_pixels = embedded(torch.from_numpy(batch)).numpy()
        from_inputs = plain(torch.from_numpy(pre.apply(batch))).numpy()
    np.testing.assert_allclose(from_pixels, from_inputs, rtol=0, atol=1e-6)


def test_deployable_embeds_the_training_normaliser():
    embedded = Deployable(flatten_model(), SETTINGS["all"], ExportOptions(embed_preprocessing=True))
    assert isinstance(embedded.normalise, NormaliseLayer)
    assert Deployable(flatten_model(), SETTINGS["all"], ExportOptions()).normalise is None


@pytest.mark.parametrize("name", ["bgr", "all"])
def test_exported_graph_with_embedded_preprocessing_matches_numpy(name, tmp_path):
    pre = SETTINGS[name]
    deployable = Deployable(flatten_model(), pre, ExportOptions(embed_preprocessing=True)).eval()
    path = tmp_path / "normalise.onnx"
    _export_graph(deployable, torch.from_numpy(pixels(2)), path, None, ("pixels", "logits"))
    session = make_session(path, "cpu")
    batch = pixels(5, seed=2)
    out = session.run(None, {"pixels": batch})[0]
    expected = pre.apply(batch).reshape(len(batch), -1)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6 * max(1.0, np.abs(expected).max()))
