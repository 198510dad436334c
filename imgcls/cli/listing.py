"""imgcls models and imgcls plugins: what is registered, and by which plugin."""

from __future__ import annotations

import json

import typer

from ..plugins import DEFAULT_PLUGINS, failed_plugins, load_plugins, plugin_version, skipped
from ..registry import list_augmentations, list_datasets, list_engines, list_models
from .console import print_table


def _human(count: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered models: plugin, input size, parameters and MACs (2 classes)."""
    from ..modelinfo import describe  # imports torch

    rows = [describe(entry) for entry in list_models()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    print_table(("model", "plugin", "input", "params", "MACs", "description"),
                ((row["name"], row["plugin"], "x".join(map(str, row["input_size"])),
                  _human(row["parameters"]), _human(row["macs"]), row["description"])
                 for row in rows))


def plugins(
    augmentations: bool = typer.Option(False, "--augmentations", help="List augmentations."),
    datasets: bool = typer.Option(False, "--datasets", help="List dataset loaders."),
    engines: bool = typer.Option(False, "--engines",
                                 help="List inference engines (imgcls infer --engine)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List loaded plugins and what each registers (or augmentations / datasets / engines)."""
    if engines:
        _print_rows([{"name": e.spec.name, "plugin": e.plugin,
                      "formats": ", ".join(e.spec.formats),
                      "options": ", ".join(e.spec.options), "description": e.spec.description}
                     for e in list_engines()],
                    ("name", "plugin", "formats", "options", "description"), as_json)
        return
    if augmentations or datasets:
        entries = list_augmentations() if augmentations else list_datasets()
        rows = [{"name": e.spec.name, "plugin": e.plugin, "description": e.spec.description}
                for e in entries]
        _print_rows(rows, ("name", "plugin", "description"), as_json)
        return
    _print_rows(plugin_rows(), ("name", "version", "hooks", "registers"), as_json)


def plugin_rows() -> list[dict[str, str]]:
    """One row per plugin: what it registers, commands included, and what was skipped."""
    from . import plugin_commands

    pm = load_plugins()
    registered: dict[str, list[str]] = {}
    for kind, entries in (("model", list_models()), ("augmentation", list_augmentations()),
                          ("dataset", list_datasets()), ("engine", list_engines())):
        for entry in entries:
            registered.setdefault(entry.plugin, []).append(f"{kind}:{entry.spec.name}")
    for name, commands in plugin_commands().items():
        registered.setdefault(name, []).extend(f"command:{c}" for c in commands)
    rows = []
    for name, plugin in sorted(pm.list_name_plugin()):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        # A skipped item is listed where it would have been, marked, so a user sees
        # why `--model x` trains another plugin's x.
        items = registered.get(name, []) + [f"{item} (skipped: {why})"
                                            for item, why in skipped.get(name, {}).items()]
        if name in failed_plugins:  # loaded, but one of its hooks raised
            items.append(f"FAILED: {failed_plugins[name]}")
        version = plugin_version(name) or ("built-in" if name in DEFAULT_PLUGINS else "")
        rows.append({"name": name, "version": version,
                     "hooks": ", ".join(hooks), "registers": ", ".join(items)})
    for name, reason in failed_plugins.items():
        if pm.get_plugin(name) is None:
            rows.append({"name": name, "version": "FAILED", "hooks": "", "registers": reason})
    return rows


def _print_rows(rows: list[dict], columns: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    print_table(columns, ([row[c] for c in columns] for row in rows))
