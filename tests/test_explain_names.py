"""imgcls explain speaks in names a user reads, and draws figures whose labels stay legible."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from imgcls.explain.api import Explanation
from imgcls.explain.figures import (
    MAX_WIDTH_PX,
    explanation_figure,
    feature_map_figure,
    filters_figure,
)
from imgcls.explain.names import layer_names, named, resolve
from imgcls.registry import get_model

CSS = Path(__file__).resolve().parents[1] / "imgcls" / "templates" / "pages.css"
MIN_TEXT_PX = 13  # the page's own text is 13.6 px (.85rem figcaptions)


def _model(name: str) -> nn.Module:
    spec = get_model(name).spec
    return spec.build(2, image_size=spec.input_size)


def test_numbered_layers_are_counted_by_kind_as_the_tutorial_does():
    names = layer_names(_model("basic-cnn"))
    assert [names[m].label for m in "012345"] == [
        "conv 1 (32 filters)", "after ReLU 1", "pool 1", "conv 2 (32 filters)", "after ReLU 2",
        "pool 2"]
    assert [names[m].option for m in "012345"] == ["conv1", "relu1", "pool1", "conv2",
                                                     "relu2", "pool2"]
    # Blocks of resnet-s, and the layers inside them.
    names = layer_names(_model("resnet-s"))
    assert names["3"].label == "block 1 (BasicBlock)" and names["3"].option == "block1"
    assert names["3.body.0"].label == "conv 2 (16 filters) in block 1"
    assert names["3.body"].option == "block1.body"
    assert named(names, "3.relu#2").label == "after ReLU 3 in block 1, 2nd call"


def test_layer_names_are_typed_any_way_a_caption_shows_them():
    names = layer_names(_model("basic-cnn"))
    among = list("012345")
    for typed, module in (("4", "4"), ("relu2", "4"), ("ReLU 2", "4"), ("after relu 2", "4"),
                          ("conv 1 (32 filters)", "0"), ("POOL_2", "5")):
        assert resolve(typed, names, among) == module, typed
    assert resolve("relu3", names, among) is None  # a ReLU, but on the dense layer
    assert resolve("conv9", names, among) is None


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3)
        self.relu = nn.ReLU()


class _Named(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU()
        self.layer1 = nn.Sequential(_Block(), _Block())


def test_named_modules_keep_their_dotted_names_and_say_what_they_are():
    names = layer_names(_Named())
    assert names["layer1"].label == "layer1 (a stage of 2 _Blocks)"
    assert names["stem"].label == "stem (conv, 4 filters)"
    assert names["layer1.0"].label == "layer1.0 (_Block block)"
    assert names["layer1.1.relu"].label == "layer1.1.relu (ReLU)"
    among = list(names)
    assert resolve("layer1", names, among) == "layer1"
    # "ReLU" is what many layers are, not one layer's name.
    assert resolve("ReLU", names, among) is None and resolve("act", names, among) == "act"


def _text_px(figure) -> list[tuple[str, float]]:
    from matplotlib.text import Text

    figure.canvas.draw()
    return [(t.get_text(), t.get_fontsize() * figure.dpi / 72)
            for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _css_rules() -> list[tuple[str, str]]:
    css = re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.DOTALL)
    return [(selector.strip(), body) for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}",
                                                                       css)]


@pytest.mark.parametrize("classes", [1, 2, 5])
def test_explain_figures_are_shown_at_their_size_with_legible_labels(classes):
    names = [f"class-{i}" for i in range(max(classes, 3))]
    pixels = np.zeros((64, 64, 3), np.uint8)
    cams = {name: np.random.default_rng(0).random((64, 64), np.float32)
            for name in names[:classes]}
    item = Explanation("a.jpg", pixels, names, np.linspace(1, 2, len(names)) / 4.5, cams,
                       "gradcam", "4")
    figure = explanation_figure(item, top_k=5)
    width, _ = figure.get_size_inches() * figure.dpi
    assert width <= MAX_WIDTH_PX
    texts = _text_px(figure)
    assert {"model input", "votes (probability)"} <= {t for t, _ in texts}
    assert all(px >= MIN_TEXT_PX for _, px in texts), texts
    # The page never shows a figure narrower than MAX_WIDTH_PX, so the labels stay this size.
    body = dict(_css_rules())["body"]
    assert int(re.search(r"max-width:\s*(\d+)px", body).group(1)) >= MAX_WIDTH_PX
    for selector, rules in _css_rules():
        if "figure" in selector or "img" in selector.split():
            for limit in re.findall(r"(?<![-\w])(?:max-)?width:\s*(\d+)px", rules):
                assert "gallery" in selector or "group" in selector or int(
                    limit) >= MAX_WIDTH_PX, (selector, rules)


def test_feature_map_and_filter_figures_have_legible_titles():
    from imgcls.explain.feature_maps import FeatureMap

    names = layer_names(_model("basic-cnn"))
    feature = FeatureMap("1", "activation", "ReLU", (32, 62, 62),
                         np.zeros((16, 62, 62), np.float32), names["1"])
    texts = _text_px(feature_map_figure(feature))
    assert texts == [("after ReLU 1: 32 x 62 x 62, first 16 channels", pytest.approx(15.3,
                                                                                    abs=0.1))]
    texts = _text_px(filters_figure("conv 1", np.zeros((32, 3, 3, 3), np.float32)))
    assert texts[0][0] == "conv 1: 32 filters of 3 x 3 x 3" and texts[0][1] >= MIN_TEXT_PX
