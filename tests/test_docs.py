"""The reference docs match the code: every hook with its exact arguments, every command."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from imgcls import hookspecs
from imgcls.cli.reference import command_paths

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


# Written out by hand so the test does not compare the generated reference with itself.
BUILT_IN_COMMANDS = [
    "train", "eval", "infer", "explain", "inspect", "models", "plugins", "export onnx",
    "data check", "augment preview",
]


def _built_page() -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks.on_page_markdown((DOCS / "cli.md").read_text(), None, None, None)


def test_the_built_cli_page_holds_each_command_with_its_own_help():
    page = _built_page()
    assert "<!-- imgcls-cli-reference -->" not in page
    sections = dict(re.findall(r"^## `imgcls ?([^`]*)`\n\n```text\n(.*?)\n```", page,
                               flags=re.MULTILINE | re.DOTALL))
    for command in BUILT_IN_COMMANDS:
        assert command in sections, f"`imgcls {command}` is missing from the CLI reference"
        assert sections[command].startswith(f"Usage: imgcls {command} "), command
    assert {" ".join(path) for path in command_paths()} <= set(sections)


def test_every_test_named_in_the_reliability_page_exists():
    root = DOCS.parent
    text = (DOCS / "reliability.md").read_text()
    references = re.findall(r"`((?:tests|plugins)/[\w/.-]+\.py)(?:::(\w+))?`", text)
    assert len(references) > 20
    for path, name in references:
        source = (root / path).read_text()
        if name:
            assert f"def {name}(" in source, f"{path}::{name} is named in reliability.md"


def test_the_readme_first_screen_shows_the_quickstart_and_fine_tuning():
    """Issue #25: a reader sees fine-tuning without scrolling (the first 30 lines), with the
    command docs/finetuning.md documents, beside the Quickstart's command."""
    first_screen = (DOCS.parent / "README.md").read_text().splitlines()[:30]
    finetune = next(line for line in (DOCS / "finetuning.md").read_text().splitlines()
                    if line.startswith("imgcls train --model resnet18 --weights imagenet"))
    assert "pip install -e . && imgcls train" in first_screen
    assert finetune in first_screen
