"""MkDocs hook: fill the CLI reference from the typer app at build time."""

from __future__ import annotations

MARKER = "<!-- imgcls-cli-reference -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    from imgcls.cli.reference import markdown as reference

    return markdown.replace(MARKER, reference())
