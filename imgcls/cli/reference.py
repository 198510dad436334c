"""The CLI reference page, generated from the typer app so it cannot drift from the code."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator

import typer


def command_paths() -> list[list[str]]:
    """Every command and sub-command, e.g. [], ["train"], ["export"], ["export", "onnx"]."""
    from . import build_app

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(build_app()), []))


def help_text(path: list[str], width: int = 100) -> str:
    """What ``imgcls PATH --help`` prints, at a fixed width."""
    from . import main

    buffer = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        with contextlib.redirect_stdout(buffer):
            main([*path, "--help"])
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return buffer.getvalue().rstrip()


def markdown() -> str:
    """One section per command with its full --help output."""
    sections = []
    for path in command_paths():
        title = " ".join(["imgcls", *path])
        sections.append(f"## `{title}`\n\n```text\n{help_text(path)}\n```\n")
    return "\n".join(sections)
