"""Third-party plugins fail softly: duplicates, clashing commands, IMGCLS_LOAD_PLUGINS, order.

Each test starts from a fresh plugin manager, as a new process would, with fake
installed entry points, so IMGCLS_LOAD_PLUGINS can be tested without subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pluggy
import pytest
from torch import nn

from imgcls import hookimpl, hookspecs, plugins, registry
from imgcls.cli import main
from imgcls.errors import DuplicateNameError, PluginError
from imgcls.registry import get_augmentation, get_dataset, get_model, list_models
from imgcls.specs import AugmentationSpec, DatasetSpec, ModelSpec, Preprocess

BUILTIN_MODELS = "imgcls.default_plugins.models"


def _model(name: str) -> ModelSpec:
    def build(num_classes: int, **_: object) -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))

    return ModelSpec(name, build, Preprocess(size=(8, 8)), "test only")


def clashing_plugin(name: str = "dupplug") -> types.ModuleType:
    """A plugin that reuses a built-in name of every kind, and adds one name of its own."""
    module = types.ModuleType(name)

    @hookimpl
    def register_models(register):
        register(_model("basic-cnn"))
        register(_model("dup-net"))

    @hookimpl
    def register_augmentations(register):
        register(AugmentationSpec("flip", lambda **_: lambda image: image, "not the real flip"))

    @hookimpl
    def register_datasets(register):
        register(DatasetSpec("folder", lambda source=None: None, "not the real folder"))

    module.register_models = register_models
    module.register_augmentations = register_augmentations
    module.register_datasets = register_datasets
    return module


def command_plugin(name: str, *commands: str) -> types.ModuleType:
    module = types.ModuleType(name)

    def make(command: str):
        return lambda: print(f"{name} {command}")

    @hookimpl
    def register_commands(cli):
        for command in commands:
            cli.command(command)(make(command))

    module.register_commands = register_commands
    return module


@pytest.fixture
def fresh(monkeypatch):
    """A plugin manager as a new process has it; ``install(name, module)`` fakes a package."""
    manager = pluggy.PluginManager("imgcls")
    manager.add_hookspecs(hookspecs)
    for module in (plugins, registry):
        monkeypatch.setattr(module, "pm", manager)
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(registry, "_cache", {})
    monkeypatch.delenv("IMGCLS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    saved = dict(plugins.failed_plugins), dict(plugins.skipped)
    plugins.failed_plugins.clear()
    plugins.skipped.clear()
    installed: list[metadata.EntryPoint] = []
    real_entry_points = metadata.entry_points

    def entry_points(**selection):  # other groups are imported by the built-ins' imports
        if selection.get("group") == plugins.ENTRY_POINT_GROUP:
            return list(installed)
        return real_entry_points(**selection)

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)

    def install(name: str, module: types.ModuleType) -> None:
        module_name = "fake_" + module.__name__.replace("-", "_")
        monkeypatch.setitem(sys.modules, module_name, module)
        installed.append(metadata.EntryPoint(name, module_name, "imgcls"))

    yield install
    for store, before in zip((plugins.failed_plugins, plugins.skipped), saved, strict=True):
        store.clear()
        store.update(before)


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_duplicate_name_is_skipped_and_the_first_registration_wins(fresh):
    fresh("dupplug", clashing_plugin())
    with pytest.warns(plugins.PluginWarning) as record:
        assert get_model("basic-cnn").plugin == BUILTIN_MODELS
        assert get_model("dup-net").plugin == "dupplug"
        assert get_augmentation("flip").plugin == "imgcls.default_plugins.augmentations"
        assert get_dataset("folder").plugin == "imgcls.default_plugins.datasets"
    messages = [str(w.message) for w in record]
    assert len(messages) == 3
    assert all("'dupplug'" in m and "imgcls.default_plugins." in m for m in messages)
    assert plugins.skipped["dupplug"].keys() == {"model:basic-cnn", "augmentation:flip",
                                                 "dataset:folder"}


def test_strict_mode_makes_a_duplicate_name_fatal(fresh, monkeypatch):
    fresh("dupplug", clashing_plugin())
    monkeypatch.setenv("IMGCLS_STRICT_PLUGINS", "1")
    with pytest.raises(DuplicateNameError) as info:
        list_models()
    assert BUILTIN_MODELS in info.value.message and "dupplug" in info.value.message


def test_cli_prints_each_warning_as_one_line_and_lists_what_was_skipped(fresh, capsys):
    fresh("dupplug", clashing_plugin())
    code, out, err = run(["plugins", "--json"], capsys)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("Warning: ") for line in lines), err
    assert "PluginWarning" not in err and ".py:" not in err
    row = next(row for row in json.loads(out) if row["name"] == "dupplug")
    assert "model:dup-net" in row["registers"]
    assert f"model:basic-cnn (skipped: plugin '{BUILTIN_MODELS}' registered it first)" in (
        row["registers"])
    code, out, err = run(["models"], capsys)
    assert code == 0 and "dup-net" in out and "Traceback" not in err


def test_builtins_stay_loaded_when_a_plugin_is_named(fresh, monkeypatch, capsys, colour_folder,
                                                     tmp_path):
    fresh("dupplug", clashing_plugin())
    fresh("other", command_plugin("other", "other-command"))
    monkeypatch.setenv("IMGCLS_LOAD_PLUGINS", "dupplug")
    code, _, err = run(["train", "--model", "basic-cnn", "--data", str(colour_folder),
                        "--epochs", "1", "-b", "8", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert {name for name, _ in plugins.pm.list_name_plugin()} == {
        *plugins.DEFAULT_PLUGINS, "dupplug"}


@pytest.mark.parametrize("value", ["-models", f"-{BUILTIN_MODELS}", "dupplug,-models"])
def test_a_builtin_is_left_out_with_a_minus_name(fresh, monkeypatch, value):
    fresh("dupplug", clashing_plugin())
    monkeypatch.setenv("IMGCLS_LOAD_PLUGINS", value)
    plugins.load_plugins()
    assert plugins.pm.get_plugin(BUILTIN_MODELS) is None
    assert plugins.pm.get_plugin("imgcls.default_plugins.loggers") is not None
    # Without the built-in models, the plugin's basic-cnn is the only one.
    assert [e.spec.name for e in list_models()] == ["basic-cnn", "dup-net"]
    assert get_model("basic-cnn").plugin == "dupplug"


def test_a_plugin_is_left_out_with_a_minus_name_and_empty_loads_none(fresh, monkeypatch):
    fresh("dupplug", clashing_plugin())
    monkeypatch.setenv("IMGCLS_LOAD_PLUGINS", "-dupplug")
    plugins.load_plugins()
    assert plugins.pm.get_plugin("dupplug") is None
    assert plugins.pm.get_plugin(BUILTIN_MODELS) is not None
    monkeypatch.setattr(plugins, "_loaded", False)
    for name in [name for name, _ in plugins.pm.list_name_plugin()]:
        plugins.pm.unregister(name=name)
    monkeypatch.setenv("IMGCLS_LOAD_PLUGINS", " ")
    assert plugins.load_plugins().list_name_plugin() == []


def test_an_unknown_name_in_imgcls_load_plugins_is_a_warning(fresh, monkeypatch):
    fresh("dupplug", clashing_plugin())
    monkeypatch.setenv("IMGCLS_LOAD_PLUGINS", "dupplgu,-loggers")
    with pytest.warns(plugins.PluginWarning, match="'dupplgu'.*Did you mean 'dupplug'"):
        plugins.load_plugins()
    assert plugins.pm.get_plugin(BUILTIN_MODELS) is not None
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setenv("IMGCLS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="dupplgu"):
        plugins.load_plugins()


def test_a_command_clashing_with_a_builtin_is_reported_at_help_and_marked(fresh, capsys):
    fresh("cmdplug", command_plugin("cmdplug", "infer", "hello"))
    fresh("late", command_plugin("late", "hello", "late-one"))
    code, out, err = run(["--help"], capsys)
    assert code == 0 and "hello" in out and "late-one" in out and "Classify images" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("Warning: ") for line in lines), err
    assert "'infer'" in lines[0] and "'cmdplug'" in lines[0] and "built-in" in lines[0]
    assert "'hello'" in lines[1] and "'late'" in lines[1] and "'cmdplug'" in lines[1]
    code, out, _ = run(["hello"], capsys)
    assert code == 0 and out.strip() == "cmdplug hello"
    code, out, _ = run(["plugins", "--json"], capsys)
    rows = {row["name"]: row["registers"] for row in json.loads(out)}
    assert rows["cmdplug"] == ("command:hello, command:infer "
                               "(skipped: it is a built-in imgcls command)")
    assert rows["late"] == ("command:late-one, "
                            "command:hello (skipped: plugin 'cmdplug' added it first)")


def test_strict_mode_makes_a_clashing_command_fatal(fresh, monkeypatch, capsys):
    fresh("cmdplug", command_plugin("cmdplug", "infer"))
    monkeypatch.setenv("IMGCLS_STRICT_PLUGINS", "1")
    code, _, err = run(["--help"], capsys)
    assert code == 1 and err.startswith("Error: ") and "cmdplug" in err and "built-in" in err


def _event_plugin(name: str, calls: list[str], **marks: bool) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl(**marks)
    def on_fit_end(result):
        calls.append(name)

    module.on_fit_end = on_fit_end
    return module


def test_hooks_run_in_load_order_with_tryfirst_and_trylast_and_no_wrappers(fresh):
    calls: list[str] = []
    fresh("a-last", _event_plugin("a-last", calls, trylast=True))
    fresh("b", _event_plugin("b", calls))
    fresh("c", _event_plugin("c", calls))
    fresh("d-first", _event_plugin("d-first", calls, tryfirst=True))
    wrapper = types.ModuleType("wrapping")

    @hookimpl(wrapper=True)
    def on_fit_end(result):
        calls.append("wrapper")
        return (yield)

    wrapper.on_fit_end = on_fit_end
    fresh("wrapping", wrapper)
    with pytest.warns(plugins.PluginWarning, match="'wrapping' is skipped.*wrappers"):
        plugins.call_hook("on_fit_end", result=None)
    assert calls == ["d-first", "b", "c", "a-last"]
    plugins.call_hook("on_fit_end", result=None)  # warned once, not on every call
    assert plugins.skipped["wrapping"] == {"wrapper:on_fit_end":
                                           "imgcls hooks do not support wrappers"}


def test_a_plugin_with_a_bad_hook_signature_is_skipped(fresh):
    module = types.ModuleType("badsig")

    @hookimpl
    def register_models(register, no_such_argument):
        register(_model("never"))

    module.register_models = register_models
    fresh("badsig", module)
    with pytest.warns(plugins.PluginWarning, match="'badsig', it failed to register"):
        plugins.load_plugins()
    assert "badsig" in plugins.failed_plugins
    assert get_model("basic-cnn").plugin == BUILTIN_MODELS


PLUGIN_SOURCE = '''
from torch import nn
from imgcls import hookimpl
from imgcls.specs import ModelSpec, Preprocess

@hookimpl
def register_models(register):
    register(ModelSpec("basic-cnn", lambda num_classes, **_: nn.Linear(3, num_classes),
                       Preprocess(size=(8, 8)), "a [bold]clash[/bold]"))

@hookimpl
def register_commands(cli):
    cli.command("plugins")(lambda: print("not the real plugins"))
'''


def test_an_installed_plugin_clashing_everywhere_leaves_the_cli_working(tmp_path):
    (tmp_path / "clash_plugin.py").write_text(PLUGIN_SOURCE)
    dist = tmp_path / "clash_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[imgcls]\nclash = clash_plugin\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("IMGCLS_LOAD_PLUGINS", None)
    env.pop("IMGCLS_STRICT_PLUGINS", None)

    def imgcls(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "imgcls", *args], env={**env, **extra},
                              capture_output=True, text=True)

    listing = imgcls("plugins")
    assert listing.returncode == 0, listing.stderr
    assert "clash" in listing.stdout and "model:basic-cnn (skipped" in listing.stdout
    assert "command:plugins (skipped" in listing.stdout
    warned = listing.stderr.strip().splitlines()
    assert len(warned) == 2 and all(line.startswith("Warning: ") for line in warned)
    assert "PluginWarning" not in listing.stderr
    models = imgcls("models", "--json", IMGCLS_LOAD_PLUGINS="clash")
    assert models.returncode == 0, models.stderr
    assert {r["name"]: r["plugin"] for r in json.loads(models.stdout)}["basic-cnn"] == (
        BUILTIN_MODELS)
    strict = imgcls("models", IMGCLS_STRICT_PLUGINS="1")
    assert strict.returncode == 1 and strict.stderr.startswith("Error: ")
    assert "'clash'" in strict.stderr and BUILTIN_MODELS in strict.stderr


def test_a_plugin_whose_hook_raises_is_marked_and_its_text_is_not_markup(fresh, capsys):
    module = types.ModuleType("raiser")

    @hookimpl
    def register_models(register):
        raise RuntimeError("[bold]boom[/bold]")

    module.register_models = register_models
    fresh("raiser", module)
    code, out, err = run(["plugins"], capsys)
    assert code == 0 and "FAILED: RuntimeError: [bold]boom[/bold]" in out
    assert err.startswith("Warning: skipping plugin 'raiser'") and "[bold]boom[/bold]" in err


def test_no_builtin_plugin_adds_commands():
    # The command listing (imgcls --help) skips the built-ins, whose imports bring torch.
    for name in plugins.DEFAULT_PLUGINS:
        assert not hasattr(plugins.builtin_plugin(name), "register_commands"), name


def test_plugins_loaded_for_the_listing_still_lose_duplicates_to_builtins(fresh):
    fresh("dupplug", clashing_plugin())
    plugins.load_command_plugins()  # what `imgcls --help` does: the built-ins come later
    assert plugins.pm.get_plugin("dupplug") and not plugins.pm.get_plugin(BUILTIN_MODELS)
    with pytest.warns(plugins.PluginWarning, match="'dupplug'"):
        assert get_model("basic-cnn").plugin == BUILTIN_MODELS


NO_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision", "timm"):
            raise ImportError(f"imgcls {sys.argv[1]} imported {name}")

sys.meta_path.insert(0, NoTorch())
from imgcls.cli import main
sys.exit(main(sys.argv[1:]))
"""
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_neither_torch_nor_torchvision(flag):
    # The repository's plugins (installed or not) go first, so their import is the one
    # tested; strict mode makes a plugin that needs torch to import a failure.
    path = [str(ROOT), *map(str, sorted((ROOT / "plugins").glob("imgcls-*")))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "IMGCLS_STRICT_PLUGINS": "1"}
    env.pop("IMGCLS_LOAD_PLUGINS", None)
    done = subprocess.run([sys.executable, "-c", NO_TORCH, flag], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert ("Commands:" in done.stdout) if flag == "--help" else done.stdout.startswith("imgcls")
