"""The bounds every imgcls structure shares, and one translation of schema errors.

The manifest, ``Preprocess``, the resume state and ``TrainConfig`` are each
declared once as a pydantic schema in strict mode (no ``"3"`` becoming 3, no
``true`` becoming 1). Their limits are the constants below, and a failed
validation becomes an imgcls error through :func:`schema_error`, whose message
names the field path. Nothing here imports torch or numpy.
"""

from __future__ import annotations

import typing
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as ValidationError  # re-exported for callers
from pydantic_core import PydanticCustomError

from .errors import ImgclsError

# --------------------------------------------------------------------------- bounds
# An image side (a model input, --img-size, a manifest's preprocess.size): the upper
# bound is far above any classifier's input and far below a size whose first batch
# exhausts memory. A model's own minimum (ModelSpec.min_size) is checked by training.
MIN_SIDE, MAX_SIDE = 1, 4096
# |mean|, std and |value_range| in value_range's units: wide enough for any real model,
# narrow enough that normalisation cannot overflow float32.
MAX_MEAN = 1e4
MIN_STD = 1e-4
# A manifest nests a few levels (parity inside export); far deeper means a hostile file,
# and printing or re-encoding it would hit Python's recursion limit.
MAX_DEPTH = 32

# Strict: JSON's types are kept apart (an int is still accepted where a float is asked).
# Unknown keys are kept, so a newer writer's additions do not break an older reader.
STRICT = ConfigDict(strict=True, extra="allow")

# --------------------------------------------------------------------------- shared types


def _list_as_tuple(value: Any) -> Any:
    # JSON has arrays only; strict mode would refuse a list where a tuple is declared.
    return tuple(value) if isinstance(value, list) else value


def fixed(*items: Any) -> Any:
    """A fixed-length tuple (a JSON array of ``len(items)``) of the given item types."""
    return Annotated[tuple[items], BeforeValidator(_list_as_tuple)]


Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE)]
Number = Annotated[float, Field(allow_inf_nan=False)]  # finite; int or float


def one_of(choices: Sequence[str]) -> AfterValidator:
    """A text field limited to ``choices``; kept out of the type so typer sees a plain str."""

    def check(value: str) -> str:
        if value not in choices:
            raise PydanticCustomError("unknown_choice", "not one of {choices}",
                                      {"choices": ", ".join(choices)})
        return value

    check.choices = tuple(choices)  # type: ignore[attr-defined]  # --help shows them
    return AfterValidator(check)


def choices_of(annotation: Any) -> tuple[str, ...] | None:
    """The choices of a field limited by :func:`one_of` (also inside ``... | None``)."""
    for part in (annotation, *typing.get_args(annotation)):
        for extra in getattr(part, "__metadata__", ()):
            choices = getattr(getattr(extra, "func", None), "choices", None)
            if choices:
                return choices
    return None


def _unique(values: list) -> list:
    counts = Counter(values)
    if len(counts) != len(values):
        repeated = [v for v, n in counts.items() if n > 1]
        raise PydanticCustomError("not_unique", "repeats {repeated}",
                                  {"repeated": _shown(repeated)[1:-1]})
    return values


# Names without repeats, stated in the JSON Schema too (pydantic would not check it).
UniqueNames = Annotated[list[str], Field(json_schema_extra={"uniqueItems": True}),
                        AfterValidator(_unique)]

# --------------------------------------------------------------------------- errors

Location = tuple[str | int, ...]
E = TypeVar("E", bound=ImgclsError)

# One sentence per kind of failure; {name} is the field as the caller names it.
_TEMPLATES = {
    "missing": "{name} is missing",
    "extra_forbidden": "{name} is not a known field",
    "int_type": "{name} must be an integer, got {input}",
    "float_type": "{name} must be a number, got {input}",
    "bool_type": "{name} must be true or false, got {input}",
    "string_type": "{name} must be text, got {input}",
    "list_type": "{name} must be a list, got {input}",
    "tuple_type": "{name} must be a list, got {input}",
    "too_short": "{name} must hold at least {min_length} items, got {input}",
    "too_long": "{name} must hold at most {max_length} items, got {input}",
    "greater_than_equal": "{name} must be at least {ge}, got {input}",
    "greater_than": "{name} must be greater than {gt}, got {input}",
    "less_than_equal": "{name} must be at most {le}, got {input}",
    "less_than": "{name} must be below {lt}, got {input}",
    "finite_number": "{name} must be a finite number, got {input}",
    "literal_error": "{name} must be {expected}, got {input}",
    "is_instance_of": "{name} must be a {class}, got {kind}",
    "unknown_choice": "Unknown {name} {input}; choose {choices}",
    "not_unique": "{name} holds {repeated} more than once",
}
for _kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type"):
    _TEMPLATES[_kind] = "{name} must be an object, got {input}"
# Bounds read better in words at zero.
_AT_ZERO = {"greater_than_equal": "{name} must be 0 or more, got {input}",
            "greater_than": "{name} must be positive, got {input}"}


def dotted(loc: Location) -> str:
    """``("preprocess", "size", 0)`` -> ``preprocess.size[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the value"


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _number(value: Any) -> Any:
    return format(value, "g") if isinstance(value, float) else value


def describe(error: dict[str, Any], name: Callable[[Location], str] = dotted) -> str:
    """One pydantic error as a sentence naming the field, e.g. ``size[0] must be at least 8``."""
    kind, ctx = error["type"], error.get("ctx") or {}
    template = _TEMPLATES.get(kind)
    if kind in _AT_ZERO and ctx.get("ge", ctx.get("gt")) == 0:
        template = _AT_ZERO[kind]
    ctx = {key: _number(value) for key, value in ctx.items()}
    values = {**ctx, "name": name(tuple(error["loc"])), "input": _shown(error.get("input")),
              "kind": type(error.get("input")).__name__}
    try:
        return template.format(**values) if template else f"{values['name']}: {error['msg']}"
    except (KeyError, IndexError, ValueError):  # a context pydantic did not fill in
        return f"{values['name']}: {error['msg']}"


def schema_error(exc: ValidationError, error: type[E], prefix: str = "",
                 hint: str | Callable[[Location], str | None] | None = None,
                 name: Callable[[Location], str] = dotted) -> E:
    """The first problem of ``exc`` as one imgcls error: ``prefix``, the problem, a hint."""
    problems = exc.errors(include_url=False)
    first = problems[0]
    text = describe(first, name)
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more)"
    return error(f"{prefix}{text}.", hint(tuple(first["loc"])) if callable(hint) else hint)


def validate(adapter: TypeAdapter, value: Any, error: type[ImgclsError], prefix: str = "",
             hint: str | Callable[[Location], str | None] | None = None,
             name: Callable[[Location], str] = dotted) -> Any:
    """``adapter.validate_python(value)``, failing as one imgcls error (see schema_error)."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise schema_error(exc, error, prefix, hint, name) from exc
