"""One way to give each thing on every command: --data, -o/--output, --out-dir, -k, --workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from imgcls.cli import build_app, main
from imgcls.cli.data import WORKERS_HELP, check_workers
from imgcls.errors import ConfigError
from imgcls.train.config import TrainConfig

from .conftest import write_class_folders

DATA_COMMANDS = (["train"], ["eval"], ["data", "check"], ["augment", "preview"])


def built_in_commands() -> Iterator[tuple[str, Any]]:
    """Every built-in (sub-)command as ("data check", click command)."""
    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        subs = getattr(command, "commands", {})
        if not subs:
            yield " ".join(path), command
        for name, sub in sorted(subs.items()):
            yield from walk(sub, [*path, name])

    # Naming a built-in command leaves the plugins' commands out.
    yield from walk(typer.main.get_command(build_app(["train"])), [])


def options(command: Any) -> dict[str, Any]:
    """Flag -> click option, for every flag of ``command`` (hidden ones included)."""
    return {flag: param for param in command.params if param.param_type_name == "option"
            for flag in [*param.opts, *param.secondary_opts]}


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def folder(tmp_path):
    return write_class_folders(tmp_path / "imgs", {"red": (220, 30, 30), "blue": (20, 30, 200)},
                               per_class=3)


def test_each_flag_means_one_thing_on_every_command():
    commands = dict(built_in_commands())
    assert {"train", "eval", "infer", "data check", "augment preview", "export onnx"} <= set(
        commands)
    for name, command in commands.items():
        flags = options(command)
        visible = {f for f, p in flags.items() if not p.hidden}
        if "--top-k" in flags:
            assert "-k" in flags["--top-k"].opts, f"imgcls {name}: --top-k without -k"
        if "-o" in flags:  # always a file; where hidden, refused with a pointer to --out-dir
            assert set(flags["-o"].opts) == {"-o", "--output"}, name
        assert "--out" not in visible, f"imgcls {name}: --out is --out-dir (folder) or -o (file)"
        if "--out-dir" in flags:
            assert "-o" not in visible, name
        if "--workers" in flags:
            assert flags["--workers"].help.startswith(WORKERS_HELP), name
        if "--data" in flags:
            assert set(flags["--data"].opts) == {"--data", "-d"}, name
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        assert all(p.hidden for p in arguments if p.name in ("data", "data_arg")), name
    for path in DATA_COMMANDS:
        assert "--data" in options(commands[" ".join(path)]), path
    for name in ("train", "eval"):
        assert "--out-dir" in options(commands[name]) and not options(commands[name])[
            "--out-dir"].hidden


@pytest.mark.parametrize("path", [["eval", "model.onnx"], ["data", "check"],
                                  ["augment", "preview"]])
def test_data_given_twice_differently_is_refused(path, capsys):
    code, _, err = run([*path, "a", "--data", "b"], capsys)
    assert code == 1 and "DATA given twice" in err


def test_data_is_required_where_there_is_no_default(capsys):
    # eval's default is the data its model records (tests/test_eval.py).
    code, _, err = run(["data", "check"], capsys)
    assert code == 1 and err.startswith("Error: Missing --data.") and "Hint: " in err


def test_positional_data_still_works_with_a_deprecation_warning(folder, tmp_path, capsys):
    code, out, err = run(["data", "check", str(folder)], capsys)
    assert code == 0 and "no problems found" in out
    assert f"DATA as a positional argument is deprecated; use --data {folder}" in err
    code, out, err = run(["data", "check", "--data", str(folder)], capsys)
    assert code == 0 and "no problems found" in out and "deprecated" not in err
    grid = tmp_path / "grid.png"
    code, _, err = run(["augment", "preview", str(folder), "-o", str(grid), "-n", "1",
                        "--variants", "1"], capsys)
    assert code == 0 and grid.is_file() and "deprecated; use --data" in err


def test_augment_preview_defaults_to_shapes_like_train(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_preview(data: str, *args: Any, **kwargs: Any) -> None:
        seen["data"] = data
        raise ConfigError("stop here", "test")

    monkeypatch.setattr("imgcls.data.preview.augment_preview", fake_preview)
    assert main(["augment", "preview", "-o", str(tmp_path / "g.png")]) == 1
    assert seen == {"data": TrainConfig().data} and TrainConfig().data == "shapes"


@pytest.mark.parametrize("command", ["train", "eval"])
def test_o_is_a_file_so_train_and_eval_point_to_out_dir(command, capsys):
    args = [command, *(["model.onnx", "--data", "shapes"] if command == "eval" else []),
            "-o", "results"]
    code, _, err = run(args, capsys)
    assert code == 1
    assert err.startswith(f"Error: -o/--output names a file; imgcls {command} writes a folder")
    assert "Hint: Use --out-dir results." in err


@pytest.fixture
def fit_config(monkeypatch) -> dict[str, Any]:
    """Calls imgcls train's fit(); records the config instead of training."""
    seen: dict[str, Any] = {}

    def fake_fit(config: TrainConfig | None = None, reporter: Any = None, **kwargs: Any) -> Any:
        seen["config"] = config
        raise ConfigError("stop here", "test")

    monkeypatch.setattr("imgcls.train.loop.fit", fake_fit)
    return seen


def test_train_out_dir_top_k_and_workers(fit_config, tmp_path):
    assert main(["train", "--out-dir", str(tmp_path), "-k", "3", "--workers", "0"]) == 1
    config = fit_config["config"]
    assert (config.out, config.top_k, config.workers, config.data) == (str(tmp_path), 3, 0,
                                                                         "shapes")
    # --out, the older spelling of the same folder, still works.
    assert main(["train", "--out", str(tmp_path / "old")]) == 1
    assert fit_config["config"].out == str(tmp_path / "old")


def test_eval_writes_into_out_dir(monkeypatch, tmp_path, capsys):
    import imgcls.evaluate

    written = {}

    def fake_write(evaluation: Any, out_dir: Any, extra: Any = None) -> dict[str, Any]:
        written["out_dir"] = out_dir
        raise ConfigError("stop here", "test")

    monkeypatch.setattr(imgcls.evaluate, "evaluate_file", lambda *a, **k: (None, {}))
    monkeypatch.setattr(imgcls.evaluate, "write_evaluation", fake_write)
    for flag in ("--out-dir", "--out"):
        assert main(["eval", "m.onnx", "--data", "shapes", flag, str(tmp_path / "e")]) == 1
        assert written["out_dir"] == tmp_path / "e"
    assert main(["eval", str(tmp_path / "run" / "m.onnx"), "--data", "shapes"]) == 1
    assert written["out_dir"] == tmp_path / "run" / "eval"


def test_workers_has_one_meaning(monkeypatch, folder, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    assert check_workers(None) is None and check_workers(3) == 3
    assert check_workers(0) == 1  # 0: no pool, one thread of this process decodes
    with pytest.raises(ConfigError, match="--workers must be 0 or more, got -1"):
        check_workers(-1)
    # The same rule and message on every command that has --workers.
    for args in (["train"], ["data", "check", "--data", str(folder)], ["infer", "m.onnx", "x"]):
        code, _, err = run([*args, "--workers", "-1"], capsys)
        assert code == 1 and "--workers must be 0 or more, got -1" in err, args
    code, out, _ = run(["data", "check", "--data", str(folder), "--workers", "0"], capsys)
    assert code == 0 and "checked 6 files" in out

    seen = {}

    def fake_inference(model: Any, inputs: Any, options: Any) -> None:
        seen["options"] = options
        raise ConfigError("stop here", "test")

    monkeypatch.setattr("imgcls.infer.batch.run_inference", fake_inference)
    assert main(["infer", "m.onnx", "x", "--workers", "0"]) == 1
    assert (seen["options"].workers, seen["options"].backend) == (1, "thread")
    assert main(["infer", "m.onnx", "x", "--workers", "4"]) == 1
    assert (seen["options"].workers, seen["options"].backend) == (4, "process")
