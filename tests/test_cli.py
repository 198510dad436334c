"""The CLI end to end, and clear one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from imgcls import __version__, hookimpl, plugins
from imgcls.cli import main

from .helpers import write_class_folders


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"imgcls {__version__}"


def test_models_and_plugins_listings(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "basic-cnn" in out and "deep-cnn" in out
    code, out, _ = run(["plugins"], capsys)
    assert code == 0 and "imgcls.default_plugins.models" in out
    code, out, _ = run(["plugins", "--augmentations"], capsys)
    assert code == 0 and "shear" in out


def test_train_export_infer_through_the_cli(tmp_path, colour_folder, capsys):
    code, out, _ = run(["train", "--data", str(colour_folder), "--epochs", "2", "-b", "8",
                        "--out", str(tmp_path / "runs"), "--name", "cli"], capsys)
    assert code == 0, out
    assert "epoch   2" in out and "val loss" in out
    checkpoint = tmp_path / "runs" / "cli" / "best.safetensors"
    onnx_path = tmp_path / "m.onnx"
    code, out, err = run(["export", "onnx", str(checkpoint), "-o", str(onnx_path)], capsys)
    assert code == 0, err
    assert "max |Δlogit|" in out and onnx_path.is_file()
    code, out, _ = run(["infer", str(onnx_path), str(colour_folder / "red")], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "path,label,confidence" and len(lines) == 13


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "/no/such/folder"], "not found"),
    (["train", "--model", "basic-cn"], "Did you mean 'basic-cnn'"),
    (["train", "--augment", "flip,sheer=0.2"], "Unknown augmentation 'sheer'"),
    (["train", "--epochs", "-1"], "--epochs must be at least 1"),
    (["train", "--device", "tpu"], "Unknown device"),
    (["export", "onnx", "pyproject.toml"], "not an imgcls checkpoint"),
    (["infer", "missing.onnx", "."], "Model file not found"),
])
def test_bad_input_is_one_clear_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    code, _, err = run(args + (["--out", str(tmp_path)] if args[0] == "train" else []), capsys)
    assert code == 1
    assert err.startswith("Error: ") and message in err
    assert "Traceback" not in err


def test_empty_and_single_class_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path)],
                       capsys)
    assert code == 1 and "No images" in err
    write_class_folders(tmp_path / "one", {"cat": (9, 9, 9)}, per_class=3)
    code, _, err = run(["train", "--data", str(tmp_path / "one"), "--out", str(tmp_path)],
                       capsys)
    assert code == 1 and "at least 2" in err


def test_the_cli_needs_click_only_where_typer_does():
    # typer 0.2x ships its own copy of click and does not install click, so a fresh
    # `pip install -e .` has none; older typers depend on click (then nothing is blocked).
    code = ("import sys, typer\n"
            "if 'click' not in sys.modules:\n"
            "    sys.modules['click'] = None  # an environment without click\n"
            "from imgcls.cli import main\n"
            "sys.exit(main(['--version']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"imgcls {__version__}"


def test_console_script_errors_have_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "imgcls", "train", "--data",
                             str(tmp_path / "nope")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "Hint: " in result.stderr


def _command_plugin(calls: list[str]) -> types.ModuleType:
    module = types.ModuleType("hello_plugin")

    @hookimpl
    def register_commands(cli):
        calls.append("register_commands")

        @cli.command("hello")
        def hello(name: str = "world") -> None:
            print(f"hello {name}")

    module.register_commands = register_commands
    return module


@pytest.fixture
def command_plugin():
    calls: list[str] = []
    module = _command_plugin(calls)
    plugins.load_plugins()
    plugins.pm.register(module, name="hello-plugin")
    yield calls
    plugins.pm.unregister(module)


def test_plugin_command_runs_and_is_listed(command_plugin, capsys):
    code, out, _ = run(["hello", "--name", "imgcls"], capsys)
    assert code == 0 and out.strip() == "hello imgcls"
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "hello" in out
    code, out, _ = run(["plugins", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["hello-plugin"]["registers"] == "command:hello"
    assert rows["hello-plugin"]["hooks"] == "register_commands"


def test_builtin_commands_do_not_load_plugin_commands(command_plugin, capsys):
    code, out, _ = run(["--debug", "inspect", "--help"], capsys)
    assert code == 0 and "manifest" in out
    assert command_plugin == []


def test_infer_and_inspect_on_onnx_start_without_torch(exported, colour_folder, tmp_path):
    script = (
        "import sys\n"
        "from imgcls.cli import main\n"
        f"assert main(['infer', {str(exported)!r}, {str(colour_folder)!r}, '-o', "
        f"{str(tmp_path / 'p.csv')!r}]) == 0\n"
        f"assert main(['inspect', {str(exported)!r}]) == 0\n"
        "heavy = ('torch', 'torchvision', 'imgcls.default_plugins.models')\n"
        "print('loaded:', [name for name in heavy if name in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"
    assert (tmp_path / "p.csv").read_text().count("\n") == 25  # header + 24 images


def test_a_plugin_command_cannot_shadow_a_builtin(capsys, monkeypatch):
    module = types.ModuleType("shadow_plugin")

    @hookimpl
    def register_commands(cli):
        @cli.command("infer")
        def infer() -> None:
            print("not the real infer")

        @cli.command()
        def shadow_extra() -> None:
            print("extra")

    module.register_commands = register_commands
    plugins.load_plugins()
    plugins.pm.register(module, name="shadow-plugin")
    monkeypatch.delenv("IMGCLS_STRICT_PLUGINS", raising=False)
    try:
        code, out, err = run(["--help"], capsys)
        assert code == 0 and out.count("infer ") == 1 and "Classify images" in out
        assert "shadow-extra" in out  # only the clashing command is refused
        # One line, never Python's "file.py:70: PluginWarning: ..." form.
        assert err == ("Warning: The command 'infer' of plugin 'shadow-plugin' is skipped: it is "
                       "a built-in imgcls command. Rename the command in the plugin.\n")
        code, out, err = run(["plugins"], capsys)
        assert code == 0 and "command:infer (skipped: it is a built-in imgcls command)" in out
        monkeypatch.setenv("IMGCLS_STRICT_PLUGINS", "1")
        code, _, err = run(["--help"], capsys)
        assert code == 1 and "shadow-plugin" in err and "built-in" in err
    finally:
        plugins.pm.unregister(module)
        plugins.skipped.pop("shadow-plugin", None)


def test_user_text_is_printed_as_text_not_markup(capsys):
    code, _, err = run(["train", "--model", "[bold]x[/bold]"], capsys)
    assert code == 1 and "'[bold]x[/bold]'" in err


def test_top_level_help_shows_each_summary_whole(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(["--help"], capsys)
    commands = out.split("Commands:", 1)[1]
    assert code == 0 and "..." not in commands
    assert "with best.safetensors, metrics\n           and report.html." in commands


@pytest.mark.parametrize("word,command", [("predict", "infer"), ("fit", "train"),
                                          ("evaluate", "eval")])
def test_other_tools_words_for_a_command_point_to_imgcls_own(word, command, capsys):
    code, _, err = run([word, "model.onnx", "photos"], capsys)
    assert code == 2 and f"No such command '{word}'. imgcls calls it `imgcls {command}`" in err


def test_choice_options_show_their_choices_in_help(capsys, monkeypatch):
    import typing

    from imgcls.schema import choices_of
    from imgcls.train.config import TrainConfig

    monkeypatch.setenv("COLUMNS", "200")
    _, out, _ = run(["train", "--help"], capsys)
    limited = {name: choices_of(hint) for name, hint in
               typing.get_type_hints(TrainConfig, include_extras=True).items()}
    shown = [f"--{name.replace('_', '-')} [{'|'.join(choices)}]"
             for name, choices in limited.items() if choices]
    assert "--optimizer [adamw|adam|sgd]" in shown and len(shown) >= 8
    assert all(flag in out for flag in shown), [flag for flag in shown if flag not in out]
    _, out, _ = run(["infer", "--help"], capsys)
    assert "--format [csv|jsonl|parquet]" in out and "--tta [none|flip]" in out
    _, out, _ = run(["eval", "--help"], capsys)
    assert "--split [auto|val|train|all]" in out
