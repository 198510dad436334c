"""The plugin registry: built-ins, fixture plugins, broken plugins, duplicates, unknown names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from importlib import metadata

import pytest
from torch import nn

from imgcls import hookimpl, plugins
from imgcls.errors import DuplicateNameError, PluginError, UnknownNameError
from imgcls.registry import get_augmentation, get_dataset, get_model, list_models
from imgcls.specs import ModelSpec, Preprocess


def make_plugin(name: str, model_name: str = "fixture-net", fail: bool = False):
    module = types.ModuleType(name)

    @hookimpl
    def register_models(register):
        if fail:
            raise RuntimeError("boom")
        register(ModelSpec(model_name, lambda num_classes, **_: nn.Linear(3, num_classes),
                           Preprocess(size=(8, 8)), "fixture"))

    module.register_models = register_models
    return module


@pytest.fixture
def register_plugin():
    added = []

    def add(module, name):
        plugins.load_plugins()
        plugins.pm.register(module, name=name)
        added.append(module)

    yield add
    for module in added:
        plugins.skipped.pop(plugins.pm.get_name(module), None)
        plugins.pm.unregister(module)


def test_builtins_are_registered_by_default_plugins():
    assert get_model("basic-cnn").plugin == "imgcls.default_plugins.models"
    assert get_model("deep-cnn").spec.input_size == (128, 128)
    for name in ("flip", "shear", "zoom"):
        assert get_augmentation(name).plugin == "imgcls.default_plugins.augmentations"
    assert {get_dataset(n).spec.name for n in ("folder", "shapes")} == {"folder", "shapes"}


def test_fixture_plugin_is_discovered_and_gone_after_unregister():
    module = make_plugin("fixture_plugin")
    plugins.load_plugins()
    plugins.pm.register(module, name="fixture-plugin")
    try:
        entry = get_model("fixture-net")
        assert entry.plugin == "fixture-plugin"
        assert "fixture-net" in [e.spec.name for e in list_models()]
    finally:
        plugins.pm.unregister(module)
    with pytest.raises(UnknownNameError):
        get_model("fixture-net")


def test_duplicate_name_names_both_plugins(register_plugin, monkeypatch):
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    register_plugin(make_plugin("dup_plugin", model_name="basic-cnn"), "dup-plugin")
    with pytest.warns(plugins.PluginWarning) as record:
        assert get_model("basic-cnn").plugin == "imgcls.default_plugins.models"
    [message] = [str(w.message) for w in record]
    assert "imgcls.default_plugins.models" in message and "dup-plugin" in message
    assert "model:basic-cnn" in plugins.skipped["dup-plugin"]


def test_strict_mode_makes_a_duplicate_name_fatal(register_plugin, monkeypatch):
    monkeypatch.setenv("IMGCLS_STRICT_PLUGINS", "1")
    register_plugin(make_plugin("dup_plugin2", model_name="basic-cnn"), "dup-plugin2")
    with pytest.raises(DuplicateNameError) as info:
        get_model("basic-cnn")
    assert "imgcls.default_plugins.models" in info.value.message
    assert "dup-plugin2" in info.value.message


def test_plugin_failing_to_register_is_skipped_with_warning(register_plugin, monkeypatch):
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    register_plugin(make_plugin("bad_plugin", model_name="bad-net", fail=True), "bad-plugin")
    with pytest.warns(plugins.PluginWarning, match="bad-plugin"):
        models = [e.spec.name for e in list_models()]
    assert "basic-cnn" in models and "bad-net" not in models


def test_strict_mode_makes_a_broken_plugin_fatal(register_plugin, monkeypatch):
    monkeypatch.setenv("IMGCLS_STRICT_PLUGINS", "1")
    register_plugin(make_plugin("bad_plugin2", model_name="bad-net2", fail=True), "bad-plugin2")
    with pytest.raises(PluginError, match="bad-plugin2"):
        list_models()


def test_plugin_failing_to_import_is_skipped_with_warning(monkeypatch):
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    broken = metadata.EntryPoint(name="broken", value="imgcls_no_such_module_xyz",
                                 group="imgcls")
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [broken])
    with pytest.warns(plugins.PluginWarning, match="'broken'"):
        plugins.load_entry_points()
    assert "broken" in plugins.failed_plugins
    monkeypatch.setenv("IMGCLS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken"):
        plugins.load_entry_points()


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownNameError) as info:
        get_model("basic-cn")
    assert "basic-cnn" in info.value.hint
    assert "imgcls models" in info.value.hint
    with pytest.raises(UnknownNameError, match="Unknown augmentation 'flipp'"):
        get_augmentation("flipp")


def test_bad_spec_name_is_a_plugin_failure(register_plugin, monkeypatch):
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    register_plugin(make_plugin("case_plugin", model_name="Bad Name"), "case-plugin")
    with pytest.warns(plugins.PluginWarning, match="kebab-case"):
        list_models()


def _models_json(env_value: str | None) -> list[str]:
    env = dict(os.environ)
    env.pop("IMGCLS_LOAD_PLUGINS", None)
    if env_value is not None:
        env["IMGCLS_LOAD_PLUGINS"] = env_value
    out = subprocess.run([sys.executable, "-m", "imgcls", "models", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return [row["name"] for row in json.loads(out)]


def test_imgcls_load_plugins_env_selects_plugins():
    assert _models_json("") == []
    assert _models_json("models") == ["basic-cnn", "deep-cnn", "resnet-s", "vgg-bn"]
    assert {"basic-cnn", "deep-cnn"} <= set(_models_json(None))


def _example_installed() -> bool:
    try:
        metadata.distribution("imgcls-example")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _example_installed() and not os.environ.get("IMGCLS_REQUIRE_EXAMPLE"),
                    reason="plugins/imgcls-example is not installed")
def test_example_plugin_discovered_through_entry_point():
    names = [ep.name for ep in metadata.entry_points(group="imgcls")]
    assert "example" in names
    assert get_model("tiny-cnn").plugin == "example"
    assert get_dataset("stripes").plugin == "example"
    assert get_augmentation("invert").plugin == "example"
