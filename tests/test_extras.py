"""optuna, cleanlab and grad-cam are extras: without them training works and each command
that needs one says, in one line, which extra installs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import write_class_folders

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# A None in sys.modules makes `import name` raise ImportError: the package looks uninstalled.
BLOCK = "import sys\nfor name in {names!r}:\n    sys.modules[name] = None\n"


def _run(names: tuple[str, ...], code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = BLOCK.format(names=names) + code
    # One torch thread: on 2 busy cores a second one mostly spins (CPU time, no speed-up).
    env = {**os.environ, "IMGCLS_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


def _cli(names: tuple[str, ...], args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return _run(names, f"from imgcls.cli import main\nraise SystemExit(main({args!r}))\n",
                tmp_path)


@pytest.mark.parametrize(("module", "args", "extra"), [
    ("optuna", ["tune", "--data", "shapes", "--trials", "1"], "tune"),
    ("cleanlab", ["data", "audit", "--data", "DATA", "--folds", "2"], "audit"),
    ("pytorch_grad_cam", ["explain", "CKPT", "IMAGE"], "explain"),
])
def test_a_missing_extra_is_named_in_one_line(module, args, extra, tmp_path, trained):
    data = write_class_folders(tmp_path / "d", {"a": (200, 0, 0), "b": (0, 200, 0)}, 6)
    image = next(data.rglob("*.png"))
    replace = {"DATA": str(data), "CKPT": str(trained.best_path), "IMAGE": str(image)}
    result = _cli((module,), [replace.get(a, a) for a in args], tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and f"imgcls[{extra}]" in lines[0], result.stderr
    assert lines[1:] == [f"Hint: pip install 'imgcls[{extra}]'"]
    assert not list(tmp_path.glob("runs/*")) and not (tmp_path / "audit").exists()


@pytest.mark.slow
def test_feature_maps_need_no_grad_cam(tmp_path, trained):
    data = write_class_folders(tmp_path / "d", {"a": (200, 0, 0)}, 1)
    result = _cli(("pytorch_grad_cam",), ["explain", str(trained.best_path),
                                          str(next(data.rglob("*.png"))), "--feature-maps",
                                          "--out-dir", str(tmp_path / "x")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x" / "explain.html").is_file()


@pytest.mark.slow
def test_train_needs_none_of_the_extras(tmp_path):
    """The README's first command, `pip install -e . && imgcls train`, on a smaller set."""
    result = _cli(("optuna", "cleanlab", "pytorch_grad_cam"), [
        "train", "--data", "shapes", "--data-opt", "classes=2", "--data-opt",
        "train_per_class=20", "--data-opt", "val_per_class=6", "--data-opt", "size=32",
        "--epochs", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "basic-cnn" / "report.html").is_file()


def test_pyproject_declares_the_extras_and_floors():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = " ".join(project["dependencies"])
    for name in ("optuna", "cleanlab", "grad-cam"):
        assert name not in required
    extras = project["optional-dependencies"]
    assert {"tune", "audit", "explain", "all"} <= set(extras)
    assert set(extras["all"]) == {"imgcls[tune,audit,explain]"}
    assert any(d.startswith("numpy>=2") for d in project["dependencies"])
    assert any(d.startswith("scipy>=") for d in project["dependencies"])
    for plugin in (ROOT / "plugins").glob("*/pyproject.toml"):
        deps = tomllib.loads(plugin.read_text())["project"]["dependencies"]
        assert "imgcls>=0.1,<0.2" in deps, plugin
