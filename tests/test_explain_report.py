"""report.html's most confident mistakes, each with its Grad-CAM overlay (or not, on request)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import torch
from PIL import Image
from torch import nn

from imgcls.explain.gallery import mistake_overlays
from imgcls.specs import ModelSpec, Preprocess
from imgcls.train import fit

from .helpers import colour_data, tiny_config

CAM = re.compile(r'<img class="cam" src="data:image/png;base64,([^"]+)"')


def test_report_shows_a_cam_overlay_beside_each_mistake(trained):
    text = (trained.run_dir / "report.html").read_text()
    mistakes = (trained.run_dir / "misclassified.csv").read_text().splitlines()[1:]
    assert mistakes, "the tiny run should make mistakes to show"
    overlays = CAM.findall(text)
    assert len(overlays) == text.count('<figure class="with-cam">') == min(len(mistakes), 24)
    first = Image.open(io.BytesIO(base64.b64decode(overlays[0])))
    assert first.size == (64, 64) and first.mode == "RGB"  # the model's input, coloured
    assert "Grad-CAM" in text and "where the model looked" in text


def test_no_report_cams_leaves_the_gallery_plain(tmp_path):
    data = colour_data(tmp_path / "data")
    # A learning rate this small leaves the model guessing: there are mistakes to show.
    config = tiny_config(data, tmp_path / "runs", epochs=1, lr=1e-7, report=True,
                         report_cams=False)
    run = fit(config).run_dir
    assert len((run / "misclassified.csv").read_text().splitlines()) > 1
    text = (run / "report.html").read_text()
    assert "misclassified image" in text and not CAM.search(text) and "Grad-CAM" not in text


def test_a_model_without_conv_layers_gets_a_note_instead_of_overlays():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    spec = ModelSpec("flat", lambda **_: model, Preprocess(size=(8, 8)))
    pixels = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    result = mistake_overlays(model, spec, spec.preprocess, pixels, [0, 1], torch.device("cpu"))
    assert result.images == [] and "No class-activation maps" in result.note
