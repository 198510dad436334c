"""Plugin discovery: built-ins, ``imgcls`` entry points and IMGCLS_LOAD_PLUGINS."""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .options import did_you_mean

# The built-in with the `local` engine, which `imgcls infer` runs without loading any
# plugin (registry.get_engine): named here, with the others, so the registry imports none.
BUILTIN_ENGINES = "imgcls.default_plugins.engines"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "imgcls.default_plugins.models",
    "imgcls.default_plugins.augmentations",
    "imgcls.default_plugins.datasets",
    "imgcls.default_plugins.loggers",
    BUILTIN_ENGINES,
)
ENTRY_POINT_GROUP = "imgcls"

pm = pluggy.PluginManager("imgcls")
pm.add_hookspecs(hookspecs)

_loaded = False
# Plugins that failed to load: name -> reason. Shown by `imgcls plugins`.
failed_plugins: dict[str, str] = {}
# What was skipped of plugins that did load: name -> {"model:basic-cnn": why}.
skipped: dict[str, dict[str, str]] = {}


class PluginWarning(UserWarning):
    """A plugin, or part of one, could not be loaded and was skipped."""


def strict() -> bool:
    """Whether IMGCLS_STRICT_PLUGINS makes plugin problems fatal."""
    return os.environ.get("IMGCLS_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def report_failure(name: str, exc: BaseException, stage: str) -> None:
    """Skip a broken plugin with a warning naming it, or raise in strict mode."""
    reason = f"{type(exc).__name__}: {exc}"
    if strict():
        raise PluginError(
            f"Plugin {name!r} failed to {stage}: {reason}",
            "Fix or uninstall the plugin, or unset IMGCLS_STRICT_PLUGINS to skip it.",
        ) from exc
    failed_plugins[name] = reason
    warnings.warn(f"skipping plugin {name!r}, it failed to {stage}: {reason}",
                  PluginWarning, stacklevel=3)


def report_skip(plugin: str, item: str, what: str, why: str, hint: str,
                error: type[PluginError] = PluginError) -> None:
    """Skip one thing a plugin provides (the rest of it loads), or raise ``error`` if strict.

    ``item`` is its listing label (``model:basic-cnn``), ``what`` names it in a sentence.
    """
    if strict():
        raise error(f"{what} of plugin {plugin!r} cannot be loaded: {why}.",
                    f"{hint} Or unset IMGCLS_STRICT_PLUGINS to skip it.")
    if item in skipped.setdefault(plugin, {}):
        return  # warned already: events call this once per epoch
    skipped[plugin][item] = why
    warnings.warn(f"{what} of plugin {plugin!r} is skipped: {why}. {hint}",
                  PluginWarning, stacklevel=3)


def short_name(module_name: str) -> str:
    """``imgcls.default_plugins.models`` -> ``models``, the short name of a built-in."""
    return module_name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Selection:
    """What IMGCLS_LOAD_PLUGINS asks for: ``a,b`` loads those entry points, ``-a`` leaves a out.

    Built-ins load unless left out; an empty value loads no plugin at all.
    """

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    nothing: bool = False

    @classmethod
    def from_env(cls) -> Selection:
        """Parse IMGCLS_LOAD_PLUGINS."""
        value = os.environ.get("IMGCLS_LOAD_PLUGINS")
        if value is None:
            return cls()
        names = [name.strip() for name in value.split(",") if name.strip()]
        return cls(frozenset(n for n in names if not n.startswith("-")),
                   frozenset(n[1:].strip() for n in names if n.startswith("-")),
                   nothing=not names)

    def loads_builtin(self, module_name: str) -> bool:
        """Whether a built-in loads: unless left out by its full or short name."""
        return not self.nothing and not {module_name, short_name(module_name)} & self.exclude

    def loads_entry_point(self, name: str) -> bool:
        """Whether an installed plugin loads."""
        if self.nothing or name in self.exclude:
            return False
        # Naming only built-ins (IMGCLS_LOAD_PLUGINS=models) still means "no third-party ones".
        return not self.include or name in self.include


def builtin_plugin(module_name: str) -> ModuleType:
    """One built-in plugin's module, imported (not registered) without loading the others."""
    if module_name not in DEFAULT_PLUGINS:
        raise ValueError(f"{module_name!r} is not a built-in plugin")
    return importlib.import_module(module_name)


def _entry_points() -> list[metadata.EntryPoint]:
    # Sorted, so which of two third-party plugins wins a duplicate name is stable.
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load_plugins() -> pluggy.PluginManager:
    """Register built-in and installed plugins once per process."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    selection = Selection.from_env()
    _check_selection(selection)
    for module_name in DEFAULT_PLUGINS:
        if selection.loads_builtin(module_name):
            _register(module_name, lambda name=module_name: importlib.import_module(name))
    load_entry_points(selection)
    return pm


def _check_selection(selection: Selection) -> None:
    known = {*DEFAULT_PLUGINS, *map(short_name, DEFAULT_PLUGINS),
             *(entry_point.name for entry_point in _entry_points())}
    for name in sorted((selection.include | selection.exclude) - known):
        message = f"IMGCLS_LOAD_PLUGINS names {name!r}, which is not an installed plugin."
        hint = (did_you_mean(name, sorted(known), n=1)
                + "Run `imgcls plugins` with IMGCLS_LOAD_PLUGINS unset to see the names.")
        if strict():
            raise PluginError(message, hint)
        warnings.warn(f"{message} {hint}", PluginWarning, stacklevel=3)


def load_command_plugins() -> pluggy.PluginManager:
    """Register what ``register_commands`` needs: the installed plugins, not the built-ins.

    No built-in adds a command (tests/test_plugin_loading.py checks it), and importing them
    imports torch: ``imgcls --help`` lists the commands in a fraction of a second without
    them. A later :func:`load_plugins` registers the built-ins; :func:`hook_impls` still
    puts them first.
    """
    if not _loaded:
        load_entry_points(Selection.from_env())
    return pm


def load_entry_points(selection: Selection | None = None) -> None:
    """Register third-party plugins declared under ``[project.entry-points.imgcls]``."""
    selection = selection or Selection()
    for entry_point in _entry_points():
        name = entry_point.name
        if selection.loads_entry_point(name) and pm.get_plugin(name) is None:
            _register(name, entry_point.load)


def _register(name: str, load: Any) -> None:
    try:
        module = load()
    except Exception as exc:  # a broken third-party plugin must not break the CLI
        report_failure(name, exc, "import")
        return
    if pm.is_registered(module):
        return
    try:
        pm.register(module, name=name)
    except Exception as exc:  # pluggy rejects a hook with arguments the hookspec lacks
        report_failure(name, exc, "register")


def plugin_name(plugin: object) -> str:
    """The name a plugin was registered under."""
    return pm.get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


def plugin_version(name: str) -> str | None:
    """The distribution version behind an entry-point plugin, if any."""
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == name and entry_point.dist is not None:
            return entry_point.dist.version
    return None


def hook_impls(hook_name: str) -> list[pluggy.HookImpl]:
    """A hook's implementations in load order; ``tryfirst`` ones first, ``trylast`` ones last.

    imgcls calls each implementation itself instead of through ``pm.hook``, so that a
    failing plugin is skipped or named rather than aborting every other plugin's call,
    each component is credited to its plugin, and the first-loaded plugin (built-ins
    first) wins a duplicate name. Hook wrappers need pluggy's call loop: they are skipped.
    """
    return _ordered(getattr(load_plugins().hook, hook_name).get_hookimpls(), hook_name)


def command_hook_impls() -> list[pluggy.HookImpl]:
    """``register_commands`` implementations, without importing the built-ins (or torch)."""
    return _ordered(load_command_plugins().hook.register_commands.get_hookimpls(),
                    "register_commands")


def _load_rank(impl: pluggy.HookImpl) -> int:
    # Built-ins first whatever the registration order (the command listing registers the
    # installed plugins before them), so a built-in always wins a duplicate name.
    rank = 0 if impl.tryfirst else 2 if impl.trylast else 1
    return rank * 2 + (0 if plugin_name(impl.plugin) in DEFAULT_PLUGINS else 1)


def _ordered(found: list[pluggy.HookImpl], hook_name: str) -> list[pluggy.HookImpl]:
    impls = []
    for impl in found:
        if impl.hookwrapper or impl.wrapper:
            name = plugin_name(impl.plugin)
            report_skip(name, f"wrapper:{hook_name}", f"The {hook_name} hook wrapper",
                        "imgcls hooks do not support wrappers",
                        "Implement the hook as a plain @hookimpl.")
            continue
        impls.append(impl)
    return sorted(impls, key=_load_rank)


def call_hook(hook_name: str, **kwargs: object) -> None:
    """Call an event hook in every plugin; a failing plugin is named in the error."""
    for impl in hook_impls(hook_name):
        try:
            impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            name = plugin_name(impl.plugin)
            raise PluginError(
                f"Plugin {name!r} failed in {hook_name}: {type(exc).__name__}: {exc}",
                f"Fix or uninstall the plugin, or leave it out with IMGCLS_LOAD_PLUGINS=-{name}.",
            ) from exc
