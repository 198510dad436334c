"""The timm plugin: the zoo's names, preprocessing as timm's own, weights, head, CAM layer."""

from __future__ import annotations

import json
from pathlib import Path

import imgcls_timm
import numpy as np
import pytest
import timm
import torch
from imgcls_timm import loading, zoo
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from timm.models import get_pretrained_cfg
from timm_helpers import photos

from imgcls.errors import ConfigError
from imgcls.images import load_pixels
from imgcls.registry import NAME_PATTERN, get_model, list_models
from imgcls.weights import apply_weights

REAL_PHOTOS = Path(__file__).resolve().parents[4] / "shared" / "data" / "cats-dogs" / "val"


def test_registers_every_architecture_and_tag_without_building_a_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("registration built a model")

    monkeypatch.setattr(timm, "create_model", refuse)
    specs = {spec.name: spec for spec in zoo.iter_specs(imgcls_timm.make_build,
                                                         imgcls_timm.make_load)}
    assert len(specs) >= len(timm.list_models()) + 1000
    assert {"timm/resnet10t", "timm/resnet10t.c3_in1k",
            "timm/convnext_nano.in12k_ft_in1k"} <= set(specs)
    assert all(NAME_PATTERN.match(name) for name in specs)
    assert get_model("timm/convnext_atto").plugin == "timm"


def test_an_architecture_lists_its_weights_default_first_and_a_tag_names_one():
    arch = get_model("timm/convnext_nano").spec
    assert arch.weights[0].tag == get_pretrained_cfg("convnext_nano").tag == "in12k_ft_in1k"
    assert {"d1h_in1k", "in12k"} <= {w.tag for w in arch.weights}
    tagged = get_model("timm/convnext_nano.in12k").spec
    assert [w.tag for w in tagged.weights] == ["in12k"]
    assert tagged.weights[0].hub_id == "timm/convnext_nano.in12k"
    assert len(get_model("timm/resnet10t.c3_in1k").spec.weights[0].categories) == 1000
    assert tagged.head == "head.fc" and get_model("timm/resnet10t").spec.head == "fc"
    # A tag's own config, not the architecture default's: r384 weights are 384 px.
    assert get_model("timm/convnext_nano.r384_in12k").spec.input_size == (384, 384)


@pytest.mark.parametrize("name", ["resnet10t.c3_in1k", "convnext_nano.in12k_ft_in1k",
                                  "cspdarknet53.ra_in1k", "deit_tiny_patch16_224.fb_in1k",
                                  "coat_lite_medium_384.in1k", "efficientnet_b0.ra_in1k"])
def test_preprocessing_reproduces_timms_eval_transform(name, tmp_path):
    cfg = get_pretrained_cfg(name)
    assert zoo.is_exact(cfg)
    transform = create_transform(**resolve_data_config({}, pretrained_cfg=cfg.to_dict()))
    preprocess = get_model(f"timm/{name}").spec.preprocess
    paths = photos(tmp_path) + sorted(REAL_PHOTOS.glob("*/*.jpg"))[:4]
    for path in paths:
        expected = transform(Image.open(path).convert("RGB")).numpy()
        ours = preprocess.apply(load_pixels(path, preprocess, draft=False))[0]
        np.testing.assert_allclose(ours, expected, atol=1e-5, err_msg=str(path))
        # imgcls's JPEG draft decode (the default, for speed) stays close.
        drafted = preprocess.apply(load_pixels(path, preprocess))[0]
        assert np.abs(drafted - expected).mean() < 0.2


def test_modes_imgcls_cannot_reproduce_are_marked_approximated():
    squash = get_pretrained_cfg("dm_nfnet_f0.dm_in1k")  # squash with crop_pct < 1
    assert squash.crop_mode == "squash" and squash.crop_pct < 1 and not zoo.is_exact(squash)
    assert "approximated" in get_model("timm/dm_nfnet_f0.dm_in1k").spec.description
    assert zoo.preprocess_from_cfg(squash).resize == "stretch"
    exact = get_pretrained_cfg("coat_lite_medium_384.in1k")  # squash, crop_pct 1: a stretch
    assert zoo.is_exact(exact) and zoo.preprocess_from_cfg(exact).resize == "stretch"


def test_builds_a_new_head_and_names_its_cam_layer():
    spec = get_model("timm/resnet10t").spec
    model = spec.build(3, image_size=(64, 64))
    assert model.get_submodule(spec.head).out_features == 3
    assert spec.cam_layer(model) == "layer4"
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    assert get_model("timm/convnext_atto").spec.cam_layer(
        get_model("timm/convnext_atto").spec.build(2, image_size=(64, 64))) == "stages.3"
    deit = get_model("timm/deit_tiny_patch16_224").spec
    vit = deit.build(2, image_size=(64, 64))
    assert vit(torch.zeros(2, 3, 64, 64)).shape == (2, 2)  # position embeddings for 64 px
    assert deit.cam_layer(vit) == "patch_embed.proj"  # its blocks give tokens, not maps


def test_an_option_the_architecture_does_not_take_is_a_value_error():
    with torch.device("meta"), pytest.raises(ValueError, match=r"vgg11.*drop_path_rate"):
        get_model("timm/vgg11").spec.build(2, image_size=(64, 64), drop_path_rate=0.1)


def _hub_cache(root: Path, hub_id: str, state: dict) -> Path:
    """The Hugging Face cache layout for one file, as a download would leave it."""
    repo = root / f"models--{hub_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file(state, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


def test_hub_weights_load_through_timm_from_the_cache_when_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")
    source = timm.create_model("resnet10t", num_classes=1000)
    _hub_cache(tmp_path, "timm/resnet10t.c3_in1k", source.state_dict())
    spec = get_model("timm/resnet10t").spec
    model = spec.build(3, image_size=(64, 64))
    record = apply_weights(spec, model, "imagenet")
    assert record == {"tag": "c3_in1k", "hub_id": "timm/resnet10t.c3_in1k"}
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert model.fc.out_features == 3  # the pretrained 1,000-class head was left out


@pytest.mark.parametrize("variable", ["IMGCLS_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_without_the_file_is_one_error_naming_the_url(tmp_path, monkeypatch, variable):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/mirror")
    spec = get_model("timm/resnet10t").spec
    with pytest.raises(ConfigError) as info:
        apply_weights(spec, spec.build(2, image_size=(64, 64)), "c3_in1k")
    assert variable in info.value.message and "\n" not in info.value.message
    assert ("http://127.0.0.1:9/mirror/timm/resnet10t.c3_in1k/resolve/main/model.safetensors"
            in info.value.hint)
    assert not list(tmp_path.iterdir())


def test_a_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(timm.models._builder, "load_state_dict_from_hf", unreachable)
    spec = get_model("timm/resnet10t").spec
    with pytest.raises(ConfigError, match="connection refused") as info:
        loading.make_load("resnet10t.c3_in1k", get_pretrained_cfg("resnet10t.c3_in1k"))(
            spec.build(2, image_size=(64, 64)), None)
    assert "huggingface.co/timm/resnet10t.c3_in1k" in info.value.message


def test_a_fetched_url_file_loads_through_timms_filter(tmp_path):
    # Weights imgcls fetched from a URL reach timm as a file; timm's checkpoint filter
    # resizes a ViT's position embeddings from 160 px to the 64 px the model was built for.
    source = timm.create_model("test_vit", num_classes=1000)
    path = tmp_path / "vit.safetensors"
    save_file(source.state_dict(), str(path))
    spec = get_model("timm/test_vit").spec
    model = spec.build(2, image_size=(64, 64))
    assert model.pos_embed.shape != source.pos_embed.shape
    spec.weights[0].load(model, path)
    assert torch.equal(model.patch_embed.proj.weight, source.patch_embed.proj.weight)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_models_search_and_details_list_the_zoo(capsys):
    from imgcls.cli import main

    assert main(["models", "--search", "timm/resnet10t*", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == ["timm/resnet10t", "timm/resnet10t.c3_in1k"]
    assert all(row["weights"] == ["c3_in1k"] and row["parameters"] for row in rows)
    assert main(["models", "--search", "CONVNEXT atto_rms"]) == 0  # every word, any case
    assert "timm/convnext_atto_rms" in capsys.readouterr().out
    assert main(["models", "--details", "timm/convnext_atto"]) == 0
    out = capsys.readouterr().out
    assert "d2_in1k (default)" in out and "timm/convnext_atto.d2_in1k" in out
    assert "shorter side to 256 then centre crop (crop 0.875)" in out


def test_every_registered_timm_name_is_listed_once():
    names = [e.spec.name for e in list_models() if e.plugin == "timm"]
    assert len(names) == len(set(names)) > 2000


class _Hub:
    """A Hugging Face Hub stand-in on 127.0.0.1 serving one file, counting requests."""

    def __init__(self, path: str, body: bytes) -> None:
        import hashlib
        import http.server
        import threading

        hub, digest = self, hashlib.sha256(body).hexdigest()
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, with_body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if self.path != path:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", "1" * 40)
                self.send_header("ETag", f'"{digest}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self._answer(False)

            def do_GET(self) -> None:
                self._answer(True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


LOAD_SCRIPT = """
import sys, torch
from safetensors.torch import load_file
from imgcls.registry import get_model
from imgcls.weights import apply_weights
spec = get_model("timm/resnet10t").spec
model = spec.build(2, image_size=(64, 64))
print(apply_weights(spec, model, "imagenet", progress=False))
assert torch.equal(model.conv1[0].weight, load_file(sys.argv[1])["conv1.0.weight"])
"""


@pytest.mark.slow  # two fresh interpreters: HF_ENDPOINT is read when huggingface_hub loads
def test_hub_weights_download_from_hf_endpoint_then_come_from_the_cache(tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "model.safetensors"
    save_file(timm.create_model("resnet10t", num_classes=1000).state_dict(), str(path))
    hub = _Hub("/timm/resnet10t.c3_in1k/resolve/main/model.safetensors", path.read_bytes())
    try:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
               "HF_HUB_DISABLE_XET": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("IMGCLS_OFFLINE", None)
        first = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(path)], env=env,
                               capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr[-2000:]
        assert "GET /timm/resnet10t.c3_in1k/resolve/main/model.safetensors" in hub.requests
        assert list((tmp_path / "hf").rglob("model.safetensors"))
        seen = len(hub.requests)
        second = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(path)],
                                env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-2000:]
        assert len(hub.requests) == seen  # offline: the cached file, no request at all
    finally:
        hub.server.shutdown()
