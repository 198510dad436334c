"""nox sessions: `nox -s tests` (the default), `nox -s lint` and `nox -s docs`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PLUGINS = ["plugins/imgcls-example", "plugins/imgcls-torchvision", "plugins/imgcls-timm",
           "plugins/imgcls-tensorboard", "plugins/imgcls-ray"]


@nox.session
def tests(session: nox.Session) -> None:
    """Install imgcls and the example plugin, then run every test (slow ones included)."""
    session.install("-e", ".[dev]")
    for plugin in PLUGINS:
        session.install(plugin)
    session.run(
        "pytest", "tests", *(f"{plugin}/tests" for plugin in PLUGINS), *session.posargs,
        env={"IMGCLS_REQUIRE_EXAMPLE": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, plugins, examples and benchmarks."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with MkDocs in strict mode (any warning fails)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", f"{session.create_tmp()}/site",
                env={"NO_MKDOCS_2_WARNING": "1"})
