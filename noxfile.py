"""nox sessions: `nox -s tests` (the default) and `nox -s lint`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PLUGINS = ["plugins/imgcls-example", "plugins/imgcls-torchvision", "plugins/imgcls-tensorboard"]


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
