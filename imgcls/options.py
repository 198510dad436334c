"""What users type: option values given as text, names that may be misspelt, and
model options, checked against the builder that takes them."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

from .errors import ConfigError

# difflib's own default: "basic" finds "basic-cnn", "sgd" does not find "adam".
CLOSE_ENOUGH = 0.6


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.2' -> 0.2, 'true' -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def check_finite_option(flag: str, key: str, value: Any) -> None:
    """Refuse an inf or nan model/data option (``float("inf")`` parses as a number)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag} {key}={value}: the value must be a finite number.",
                          f"For example: {flag} {key}=0.1.")


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` names of ``known`` close to ``name``, closest first."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=CLOSE_ENOUGH)


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """``"Did you mean 'x' or 'y'? "`` for the names close to ``name``, else ``""``."""
    close = close_matches(name, known, n)
    return f"Did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


# imgcls passes these to every model builder itself: an option of the same name collides.
BUILDER_ARGUMENTS = ("num_classes", "image_size")


def builder_options(build: Callable[..., Any]) -> tuple[list[str], bool]:
    """The options a model builder takes by name, and whether it takes any (``**options``)."""
    parameters = list(inspect.signature(build).parameters.values())
    named = [p.name for p in parameters[1:]  # the first is the number of classes
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in BUILDER_ARGUMENTS]
    return named, any(p.kind is p.VAR_KEYWORD for p in parameters)


def unknown_options(build: Callable[..., Any], given: Iterable[str]) -> list[str]:
    """Those of ``given`` that ``build`` does not take (or that imgcls passes itself), sorted."""
    named, takes_any = builder_options(build)
    return sorted(k for k in given if k in BUILDER_ARGUMENTS or not (takes_any or k in named))
