"""Plugin discovery: built-ins, ``imgcls`` entry points and IMGCLS_LOAD_PLUGINS."""

from __future__ import annotations

import importlib
import os
import warnings
from importlib import metadata
from types import ModuleType

import pluggy

from . import hookspecs
from .errors import PluginError

DEFAULT_PLUGINS: tuple[str, ...] = (
    "imgcls.default_plugins.models",
    "imgcls.default_plugins.augmentations",
    "imgcls.default_plugins.datasets",
    "imgcls.default_plugins.loggers",
)
ENTRY_POINT_GROUP = "imgcls"

pm = pluggy.PluginManager("imgcls")
pm.add_hookspecs(hookspecs)

_loaded = False
# Plugins that failed to load: name -> reason. Shown by `imgcls plugins`.
failed_plugins: dict[str, str] = {}


class PluginWarning(UserWarning):
    """A plugin could not be loaded and was skipped."""


def strict() -> bool:
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
    warnings.warn(f"imgcls: skipping plugin {name!r}, it failed to {stage}: {reason}",
                  PluginWarning, stacklevel=3)


def _allowed() -> set[str] | None:
    value = os.environ.get("IMGCLS_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_plugins() -> pluggy.PluginManager:
    """Register built-in and installed plugins once per process."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    allowed = _allowed()
    for module_name in DEFAULT_PLUGINS:
        if allowed is None or module_name in allowed or module_name.rsplit(".", 1)[-1] in allowed:
            _register_module(module_name, module_name)
    load_entry_points(allowed)
    return pm


def load_entry_points(allowed: set[str] | None = None) -> None:
    """Register third-party plugins declared under ``[project.entry-points.imgcls]``."""
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            module = entry_point.load()
        except Exception as exc:  # a broken third-party plugin must not break the CLI
            report_failure(entry_point.name, exc, "import")
            continue
        if not pm.is_registered(module):
            pm.register(module, name=entry_point.name)


def _register_module(name: str, module_name: str) -> None:
    try:
        module: ModuleType = importlib.import_module(module_name)
    except Exception as exc:
        report_failure(name, exc, "import")
        return
    pm.register(module, name=name)


def plugin_name(plugin: object) -> str:
    return pm.get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


def plugin_version(name: str) -> str | None:
    """The distribution version behind an entry-point plugin, if any."""
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == name and entry_point.dist is not None:
            return entry_point.dist.version
    return None


def call_hook(hook_name: str, **kwargs: object) -> None:
    """Call an event hook in every plugin; a failing plugin is named in the error."""
    load_plugins()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            raise PluginError(
                f"Plugin {plugin_name(impl.plugin)!r} failed in {hook_name}: "
                f"{type(exc).__name__}: {exc}",
                "Fix or uninstall the plugin, or exclude it with IMGCLS_LOAD_PLUGINS.",
            ) from exc
