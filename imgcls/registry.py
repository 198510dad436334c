"""Look up the models, augmentations, dataset loaders and engines that plugins register."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import DuplicateNameError, UnknownNameError
from .options import did_you_mean
from .plugins import (
    BUILTIN_ENGINES,
    builtin_plugin,
    hook_impls,
    load_plugins,
    plugin_name,
    pm,
    report_failure,
    report_skip,
)
from .specs import AugmentationSpec, DatasetSpec, EngineSpec, ModelSpec

T = TypeVar("T")
_WORD = r"[a-z0-9]+(?:[-_][a-z0-9]+)*"
# kebab-case (snake_case too), optionally in a plugin's namespace and with a weights tag:
# `basic-cnn`, `timm/convnext_nano`, `timm/convnext_nano.in12k_ft_in1k`. Never a `/` beyond
# the namespace's, nor `..`, so a name cannot climb out of a folder it is joined to.
NAME_PATTERN = re.compile(rf"^(?:{_WORD}/)?{_WORD}(?:\.{_WORD})?$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered component and the plugin that registered it."""

    spec: T
    plugin: str


@dataclass(frozen=True)
class _Kind:
    label: str  # "model"
    hook: str  # "register_models"
    spec_type: type
    listing: str  # the command that lists this kind
    reserved: tuple[str, ...] = ()  # names only the built-ins may register


_MODELS = _Kind("model", "register_models", ModelSpec, "imgcls models")
_AUGMENTATIONS = _Kind("augmentation", "register_augmentations", AugmentationSpec,
                       "imgcls plugins --augmentations")
_DATASETS = _Kind("dataset", "register_datasets", DatasetSpec, "imgcls plugins --datasets")
# `imgcls infer` runs the local engine without loading any plugin (see get_engine), so
# no plugin may take its name, even when the built-in engines are left out.
LOCAL_ENGINE = "local"
_ENGINES = _Kind("engine", "register_engines", EngineSpec, "imgcls plugins --engines",
                 reserved=(LOCAL_ENGINE,))

_cache: dict[tuple[str, tuple[str, ...]], dict[str, Entry[Any]]] = {}


def _collect(kind: _Kind) -> dict[str, Entry[Any]]:
    load_plugins()
    # Keyed on the registered plugins (name and object: a plugin registered again under
    # the same name may register other things) so late registrations are picked up.
    key = (kind.hook, tuple(sorted((name, id(plugin)) for name, plugin in pm.list_name_plugin())))
    if key in _cache:
        return _cache[key]
    entries: dict[str, Entry[Any]] = {}
    for impl in hook_impls(kind.hook):
        owner = plugin_name(impl.plugin)
        found: dict[str, Entry[Any]] = {}

        def register(spec: Any, _owner: str = owner, _found: dict = found) -> None:
            _check_spec(kind, spec, _owner)
            if spec.name in _found:
                raise ValueError(f"{kind.label} {spec.name!r} registered twice")
            _found[spec.name] = Entry(spec, _owner)

        try:
            impl.function(register=register)
        except Exception as exc:  # a plugin's bug must not take the whole CLI down
            report_failure(owner, exc, f"register {kind.label}s")
            continue
        for name, entry in found.items():
            if name in kind.reserved and owner != BUILTIN_ENGINES:
                _skip_duplicate(kind, name, BUILTIN_ENGINES, owner)
            elif name in entries:
                _skip_duplicate(kind, name, entries[name].plugin, owner)
            else:
                entries[name] = entry
    _cache[key] = entries
    return entries


def _skip_duplicate(kind: _Kind, name: str, first: str, later: str) -> None:
    # The first-loaded plugin wins, so a third-party plugin cannot take over a
    # built-in name, nor break every command by clashing with one.
    report_skip(
        later, f"{kind.label}:{name}", f"The {kind.label} {name!r}",
        f"plugin {first!r} registered it first",
        f"Rename it in one of them, or leave one out with IMGCLS_LOAD_PLUGINS=-{later}.",
        DuplicateNameError)


def _check_spec(kind: _Kind, spec: Any, owner: str) -> None:
    if not isinstance(spec, kind.spec_type):
        raise TypeError(f"expected a {kind.spec_type.__name__}, got {type(spec).__name__}")
    if not NAME_PATTERN.match(spec.name):
        raise ValueError(f"{kind.label} name {spec.name!r} is not kebab-case (optionally "
                         "namespace/name.tag)")


def _get(kind: _Kind, name: str) -> Entry[Any]:
    entries = _collect(kind)
    if name in entries:
        return entries[name]
    raise UnknownNameError(f"Unknown {kind.label} {name!r}.",
                           f"{did_you_mean(name, list(entries))}Run `{kind.listing}` to see "
                           "what is available.")


def get_model(name: str) -> Entry[ModelSpec]:
    return _get(_MODELS, name)


def list_models() -> list[Entry[ModelSpec]]:
    return sorted(_collect(_MODELS).values(), key=lambda e: e.spec.name)


def get_augmentation(name: str) -> Entry[AugmentationSpec]:
    return _get(_AUGMENTATIONS, name)


def list_augmentations() -> list[Entry[AugmentationSpec]]:
    return sorted(_collect(_AUGMENTATIONS).values(), key=lambda e: e.spec.name)


def get_dataset(name: str) -> Entry[DatasetSpec]:
    return _get(_DATASETS, name)


def list_datasets() -> list[Entry[DatasetSpec]]:
    return sorted(_collect(_DATASETS).values(), key=lambda e: e.spec.name)


def has_dataset(name: str) -> bool:
    return name in _collect(_DATASETS)


def get_engine(name: str) -> Entry[EngineSpec]:
    """An inference engine; ``local`` comes without loading any plugin (and torch with them)."""
    if name == LOCAL_ENGINE:
        found: dict[str, EngineSpec] = {}
        builtin_plugin(BUILTIN_ENGINES).register_engines(
            register=lambda spec: found.setdefault(spec.name, spec))
        return Entry(found[LOCAL_ENGINE], BUILTIN_ENGINES)
    return _get(_ENGINES, name)


def list_engines() -> list[Entry[EngineSpec]]:
    entries = dict(_collect(_ENGINES))
    entries.setdefault(LOCAL_ENGINE, get_engine(LOCAL_ENGINE))  # also when left out
    return sorted(entries.values(), key=lambda e: e.spec.name)
