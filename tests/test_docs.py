"""The reference docs match the code: every hook with its exact arguments, every command."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from imgcls import hookspecs
from imgcls.cli.reference import command_paths, markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def hookspec_signatures() -> dict[str, str]:
    specs = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, "imgcls_spec"):
            args = ", ".join(inspect.signature(function).parameters)
            specs[name] = f"{name}({args})"
    return specs


def test_every_hookspec_is_documented_with_its_exact_arguments():
    text = (DOCS / "hooks.md").read_text()
    documented = dict(re.findall(r"^### (\w+)(\(.*\))$", text, flags=re.MULTILINE))
    expected = hookspec_signatures()
    assert expected, "no hookspecs found"
    assert {name: f"{name}{args}" for name, args in documented.items()} == expected


def test_every_command_is_in_the_cli_reference():
    assert "<!-- imgcls-cli-reference -->" in (DOCS / "cli.md").read_text()
    reference = markdown()
    for path in command_paths():
        title = " ".join(["imgcls", *path])
        assert f"## `{title}`" in reference
        assert "Usage: imgcls" in reference
    assert {"train", "export", "infer", "models", "plugins"} <= {p[0] for p in command_paths() if p}


def test_every_test_named_in_the_reliability_page_exists():
    root = DOCS.parent
    text = (DOCS / "reliability.md").read_text()
    references = re.findall(r"`((?:tests|plugins)/[\w/.-]+\.py)(?:::(\w+))?`", text)
    assert len(references) > 20
    for path, name in references:
        source = (root / path).read_text()
        if name:
            assert f"def {name}(" in source, f"{path}::{name} is named in reliability.md"
