"""imgcls models and imgcls plugins: what is registered, and by which plugin."""

from __future__ import annotations

import json

import typer

from ..plugins import DEFAULT_PLUGINS, failed_plugins, load_plugins, plugin_version, skipped
from ..registry import get_model, list_augmentations, list_datasets, list_engines, list_models
from .console import print_table


def _human(count: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


# Counting parameters and MACs builds each model: only for a listing this short.
SIZED_AT_MOST = 20


def models(
    search: str | None = typer.Option(
        None, "--search", "-s", metavar="TEXT",
        help="Only models whose name, plugin or description holds every word of TEXT, "
             "or whose name matches a glob (e.g. 'timm/convnext*')."),
    pretrained: bool = typer.Option(False, "--pretrained",
                                    help="Only models with pretrained weights."),
    details: str | None = typer.Option(
        None, "--details", metavar="NAME",
        help="One model in full: preprocessing, head, size, and each of its pretrained "
             "weights (tag, source, categories, ImageNet accuracy, preprocessing)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the registered models: plugin, input size, weights, parameters and MACs (2 classes).

    Parameters and MACs are counted when at most 20 models are listed; narrow a long
    list with --search, or see one model with --details.
    """
    from ..modelinfo import describe, matches

    if details:
        _print_details(details, as_json)
        return
    entries = [e for e in list_models() if matches(e, search, pretrained)]
    rows = [describe(entry, sized=len(entries) <= SIZED_AT_MOST) for entry in entries]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if len(rows) > SIZED_AT_MOST:
        _print_plain(rows)
        typer.echo(f"{len(rows)} models; params and MACs are counted for at most "
                   f"{SIZED_AT_MOST}: narrow with --search, or use --details NAME.")
        return
    print_table(("model", "plugin", "input", "weights", "params", "MACs", "description"),
                ((row["name"], row["plugin"], "x".join(map(str, row["input_size"])),
                  _weights_cell(row["weights"]), _size(row["parameters"]), _size(row["macs"]),
                  row["description"]) for row in rows), right=("params", "MACs"))
    if not rows:
        typer.echo("No model matches; `imgcls models` lists them all.")


def _print_plain(rows: list[dict]) -> None:
    """Thousands of rows as aligned plain text: a rich table of a whole zoo takes seconds."""
    cells = [("model", "plugin", "input", "weights", "description")] + [
        (r["name"], r["plugin"], "x".join(map(str, r["input_size"])), _weights_cell(r["weights"]),
         r["description"]) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    typer.echo("\n".join("  ".join([*(c[i].ljust(widths[i]) for i in range(4)), c[4]])
                         for c in cells))


def _weights_cell(tags: list[str]) -> str:
    if not tags:
        return "-"
    return tags[0] if len(tags) == 1 else f"{tags[0]} +{len(tags) - 1}"


def _size(count: int | None) -> str:
    return "-" if count is None else _human(count)


def _print_details(name: str, as_json: bool) -> None:
    from ..modelinfo import details

    info = details(get_model(name))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in (("model", info["name"]), ("plugin", info["plugin"]),
                       ("description", info["description"]),
                       ("preprocessing", info["preprocess_text"]),
                       ("parameters", f"{_human(info['parameters'])} (2 classes)"),
                       ("MACs", _human(info["macs"])), ("head", info["head"] or "last Linear"),
                       ("CAM layer", info["cam_layer"] or "last conv")):
        typer.echo(f"{key}: {value}")
    if not info["weights"]:
        typer.echo("No pretrained weights: --weights PATH loads a state-dict file.")
        return
    print_table(("weights", "source", "categories", "accuracy", "preprocessing"),
                ((row["tag"] + (" (default)" if row["default"] else ""), row["source"],
                  row["categories"] or "-",
                  ", ".join(f"{k} {v:g}" for k, v in row["metrics"].items()) or "-",
                  row["preprocess_text"]) for row in info["weights"]))


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
