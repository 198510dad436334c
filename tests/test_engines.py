"""`imgcls infer --engine`: engines are plugins, `local` is infer's own and never a plugin's."""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import pytest

from imgcls import hookimpl, plugins
from imgcls.cli import main
from imgcls.errors import UnknownNameError
from imgcls.infer.batch import InferOptions
from imgcls.infer.writers import Summary
from imgcls.registry import BUILTIN_ENGINES, get_engine, list_engines
from imgcls.specs import EngineSpec


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _engine_plugin(name: str, engine: str, calls: list) -> types.ModuleType:
    def run_engine(model, inputs, options, **engine_options):
        calls.append((model, list(inputs), options, engine_options))
        return Summary(images=len(inputs), seconds=1.0, provider=f"{engine} of {name}")

    module = types.ModuleType(name)

    @hookimpl
    def register_engines(register):
        register(EngineSpec(engine, run_engine, "for tests", options={"greeting": "Hello."},
                            formats=("csv", "txt")))

    module.register_engines = register_engines
    return module


@pytest.fixture
def install():
    """Register fake engine plugins for one test; returns each one's calls."""
    added: list[types.ModuleType] = []

    def add(name: str, engine: str) -> list:
        calls: list = []
        module = _engine_plugin(name, engine, calls)
        plugins.load_plugins()
        plugins.pm.register(module, name=name)
        added.append(module)
        return calls

    yield add
    for module in added:
        plugins.pm.unregister(module)
        plugins.skipped.pop(module.__name__, None)


def test_a_plugin_engine_runs_through_imgcls_infer(install, capsys, tmp_path):
    calls = install("echo-plugin", "echo")
    code, out, err = run(["infer", "model.onnx", "a.jpg", "b/", "--engine", "echo",
                          "--engine-opt", "greeting=hi", "-f", "txt", "-k", "2",
                          "-o", str(tmp_path / "p.txt"), "--resume"], capsys)
    assert code == 0, err
    [(model, inputs, options, engine_options)] = calls
    assert model == Path("model.onnx") and inputs == ["a.jpg", "b/"]
    assert isinstance(options, InferOptions) and engine_options == {"greeting": "hi"}
    assert (options.fmt, options.top_k, options.resume) == ("txt", 2, True)
    assert "2 images classified" in out and "on echo of echo-plugin" in out
    code, out, _ = run(["plugins", "--engines", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["echo"]["plugin"] == "echo-plugin" and rows["echo"]["options"] == "greeting"
    assert rows["local"]["plugin"] == BUILTIN_ENGINES


def test_engine_names_and_options_are_checked_before_anything_runs(install, capsys):
    calls = install("echo-plugin", "echo")
    code, _, err = run(["infer", "m.onnx", "x", "--engine", "ecoh"], capsys)
    assert code == 1 and "Unknown engine 'ecoh'" in err and "Did you mean 'echo'" in err
    code, _, err = run(["infer", "m.onnx", "x", "--engine", "echo",
                        "--engine-opt", "greting=hi"], capsys)
    assert code == 1 and "no option 'greting'" in err and "Did you mean 'greeting'" in err
    code, _, err = run(["infer", "m.onnx", "x", "--engine-opt", "address=auto"], capsys)
    assert code == 1 and "The local engine has no option 'address'" in err
    code, _, err = run(["infer", "m.onnx", "x", "-f", "parquet"], capsys)
    assert code == 1 and "does not write --format parquet" in err and "--engine ray" in err
    assert calls == []


def test_a_plugin_cannot_take_the_local_engine(install, monkeypatch):
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    install("shadow-plugin", "local")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engines = {entry.spec.name: entry.plugin for entry in list_engines()}
    assert engines["local"] == BUILTIN_ENGINES
    assert get_engine("local").spec.description.startswith("This machine")
    assert any("shadow-plugin" in str(w.message) and "'local'" in str(w.message)
               for w in caught)
    assert "engine:local" in plugins.skipped["shadow-plugin"]


def test_two_plugins_with_one_engine_name_the_first_wins(install, monkeypatch):
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    install("first-plugin", "twin")
    install("second-plugin", "twin")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert get_engine("twin").plugin == "first-plugin"
    assert "engine:twin" in plugins.skipped["second-plugin"]
    with pytest.raises(UnknownNameError, match="Unknown engine"):
        get_engine("triplet")
