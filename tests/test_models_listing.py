"""`imgcls models --search/--pretrained/--details`, and names with a namespace and a tag."""

from __future__ import annotations

import json
import types

import pytest
from torch import nn

from imgcls import hookimpl, plugins
from imgcls.cli import main
from imgcls.registry import NAME_PATTERN
from imgcls.specs import ModelSpec, Preprocess, WeightsSpec
from imgcls.train.run_folder import folder_name

PRE = Preprocess(size=(32, 32), resize="shorter", crop_fraction=0.875, interpolation="bicubic",
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
WEIGHTS = WeightsSpec("zoo_v1", PRE, url="https://example.invalid/zoonet-0123abcd.pth",
                      categories=("cat", "dog", "fox"), metrics={"imagenet-top1": 71.5})


def _net(num_classes: int, **_) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


@pytest.fixture
def zoo_plugin():
    module = types.ModuleType("zoo_plugin")

    @hookimpl
    def register_models(register):
        register(ModelSpec("zoo/zoonet", _net, PRE, "a zoo network", weights=(WEIGHTS,),
                           head="3"))
        register(ModelSpec("zoo/zoonet.zoo_v1", _net, PRE, "zoonet with zoo_v1 weights",
                           weights=(WEIGHTS,)))
        register(ModelSpec("zoo/plainnet", _net, Preprocess(size=(16, 16)), "no weights"))

    module.register_models = register_models
    plugins.load_plugins()
    plugins.pm.register(module, name="zoo_plugin")
    yield module
    plugins.pm.unregister(module)


def _json(capsys, *args: str) -> list | dict:
    assert main(["models", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["basic-cnn", "resnet_s", "timm/convnext_nano",
                                  "timm/convnext_nano.in12k_ft_in1k", "my-zoo/a-b.c_d"])
def test_names_may_carry_a_namespace_and_a_tag(name):
    assert NAME_PATTERN.match(name)


@pytest.mark.parametrize("name", ["Basic", "a/b/c", "../x", "a/../b", "a..b", "/a", "a/",
                                  "a.b.c", "a b", "a\\b", ".a", "a."])
def test_other_names_are_refused(name):
    assert not NAME_PATTERN.match(name)


def test_a_namespaced_name_is_one_run_folder():
    assert folder_name("timm/convnext_nano.in12k") == "timm-convnext_nano.in12k"
    assert folder_name("basic-cnn") == "basic-cnn"


def test_search_matches_every_word_or_a_glob(zoo_plugin, capsys):
    assert [r["name"] for r in _json(capsys, "--search", "ZOO network")] == ["zoo/zoonet"]
    assert [r["name"] for r in _json(capsys, "--search", "zoo/*net")] == ["zoo/plainnet",
                                                                        "zoo/zoonet"]
    # The plugin's name is searched too.
    assert {r["name"] for r in _json(capsys, "--search", "zoo_plugin")} == {
        "zoo/zoonet", "zoo/zoonet.zoo_v1", "zoo/plainnet"}
    rows = _json(capsys, "--search", "zoonet")
    assert rows[0]["weights"] == ["zoo_v1"] and rows[0]["parameters"] == 4 * 3 * 9 + 4 + 4 * 2 + 2


def test_pretrained_keeps_only_models_with_weights(zoo_plugin, capsys):
    names = [r["name"] for r in _json(capsys, "--search", "zoo/", "--pretrained")]
    assert names == ["zoo/zoonet", "zoo/zoonet.zoo_v1"]
    assert "basic-cnn" not in [r["name"] for r in _json(capsys, "--pretrained")]


def test_no_match_says_so(zoo_plugin, capsys):
    assert main(["models", "--search", "no-such-thing"]) == 0
    assert "No model matches" in capsys.readouterr().out


def test_details_show_each_weights_tag_source_accuracy_and_preprocessing(zoo_plugin, capsys):
    info = _json(capsys, "--details", "zoo/zoonet")
    assert info["head"] == "3" and info["parameters"] == 4 * 3 * 9 + 4 + 4 * 2 + 2
    [weights] = info["weights"]
    assert weights["tag"] == "zoo_v1" and weights["default"] and weights["categories"] == 3
    assert weights["metrics"] == {"imagenet-top1": 71.5}
    assert weights["preprocess"]["interpolation"] == "bicubic"
    assert main(["models", "--details", "zoo/zoonet"]) == 0
    out = capsys.readouterr().out
    for text in ("zoo_v1 (default)", "https://example.invalid/zoonet-0123abcd.pth",
                 "imagenet-top1 71.5", "shorter side to 36 then centre crop (crop 0.875)"):
        assert text in out, text
    assert main(["models", "--details", "zoo/plainnet"]) == 0
    assert "No pretrained weights" in capsys.readouterr().out


def test_details_of_an_unknown_model_suggests_close_names(zoo_plugin, capsys):
    assert main(["models", "--details", "zoo/zoonett"]) != 0
    err = capsys.readouterr().err
    assert "Unknown model" in err and "zoo/zoonet" in err


def test_a_long_listing_is_not_sized(zoo_plugin, capsys, monkeypatch):
    from imgcls.cli import listing

    monkeypatch.setattr(listing, "SIZED_AT_MOST", 1)
    rows = _json(capsys, "--search", "zoo/")
    assert len(rows) == 3 and all(r["parameters"] is None for r in rows)
    assert main(["models", "--search", "zoo/"]) == 0
    assert "narrow with --search" in capsys.readouterr().out
