"""A pip constraints file pinning each dependency of pyproject.toml to its declared floor.

    python tools/floors.py [-o floors.txt] [--loose torch,torchvision,onnxscript]

Every requirement with a ``>=`` floor, in ``[project] dependencies`` and in the extras
that are not tooling (dev, docs), becomes ``name==floor`` (markers kept), so that
``pip install -c floors.txt '.[all]'`` installs the oldest releases imgcls claims to work
with, and ``nox -s floors`` tests them. ``--loose`` (or IMGCLS_FLOORS_LOOSE) keeps named
packages at ``>=floor``: for a machine whose package index lacks a floor release.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TOOLING_EXTRAS = ("dev", "docs")


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """The runtime requirements: dependencies and the feature extras (not imgcls itself)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    found = [Requirement(line) for line in project["dependencies"]]
    for extra, lines in project.get("optional-dependencies", {}).items():
        if extra not in TOOLING_EXTRAS:
            found += [Requirement(line) for line in lines]
    return [r for r in found if r.name != project["name"]]


def floor(requirement: Requirement) -> str | None:
    """The version after ``>=``, or None when the requirement has no floor."""
    floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    return floors[0] if floors else None


def constraints(pyproject: Path = ROOT / "pyproject.toml",
                loose: frozenset[str] = frozenset()) -> list[str]:
    """One ``name==floor`` line per requirement with a floor (``name>=floor`` if loose)."""
    lines = []
    for requirement in requirements(pyproject):
        version = floor(requirement)
        if version is None:
            continue
        operator = ">=" if requirement.name.lower() in loose else "=="
        marker = f"; {requirement.marker}" if requirement.marker else ""
        lines.append(f"{requirement.name}{operator}{version}{marker}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    parser.add_argument("--loose", default=os.environ.get("IMGCLS_FLOORS_LOOSE", ""),
                        help="comma-separated names left at >=floor")
    args = parser.parse_args(argv)
    loose = frozenset(n.strip().lower() for n in args.loose.split(",") if n.strip())
    text = "".join(line + "\n" for line in constraints(loose=loose))
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
