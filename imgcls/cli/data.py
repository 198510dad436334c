"""imgcls data check and prepare, and the DATA and --workers options every command shares.

DATA is ``--data/-d`` on every command that reads labelled images (train, eval,
data check, augment preview). eval, data check and augment preview used to take
it as a positional argument; that still works, with a deprecation warning.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ..audit.duplicates import DEFAULT_MAX_DISTANCE
from ..audit.quarantine import MANIFEST, quarantine, quarantine_root, split_by_root
from ..audit.run import DEFAULT_FOLDS
from ..data import resolve_loader
from ..data.check import DEFAULT_MIN_SIZE, CheckReport, check_data
from ..errors import ConfigError
from ..outputs import check_out_dir, input_paths
from ..system import max_workers
from .console import err_console, parse_options, print_table, progress, say

DATA_HELP = "A folder of class sub-folders, a .csv/.tsv file, or a dataset name like shapes."
# Every --workers help starts with this, so the option means one thing everywhere.
WORKERS_HELP = "Workers that decode images in parallel (0: none, decode in this process)"


def data_option(help_text: str = DATA_HELP) -> Any:
    """``--data/-d DATA``; None when not given, so a positional DATA can be told apart."""
    return typer.Option(None, "--data", "-d", help=help_text, show_default=False)


def positional_data() -> Any:
    """The deprecated positional DATA: hidden from --help, still accepted."""
    return typer.Argument(None, hidden=True, show_default=False, metavar="DATA")


def pick_data(option: str | None, positional: str | None, default: str | None = None) -> str:
    """The DATA of ``--data`` or of the older positional form (with a warning)."""
    if positional is not None:
        if option is not None and option != positional:
            raise ConfigError(f"DATA given twice: --data {option!r} and {positional!r}.",
                              f"Give it once: --data {positional}.")
        err_console.print("[yellow]Warning:[/yellow] DATA as a positional argument is "
                          f"deprecated; use --data {escape(positional)}.", highlight=False)
        return positional
    if option is not None:
        return option
    if default is None:
        raise ConfigError("Missing --data.", "Name the images: --data path/to/images (a folder "
                                             "of class sub-folders), a .csv file or a dataset.")
    return default


def output_is_a_file(command: str) -> Any:
    """A hidden ``-o/--output``: a file everywhere, so here it is refused with a pointer."""
    def refuse(value: str | None) -> None:
        if value is not None:
            raise ConfigError(f"-o/--output names a file; imgcls {command} writes a folder.",
                              f"Use --out-dir {value}.")

    return typer.Option(None, "--output", "-o", hidden=True, callback=refuse)


def check_workers(workers: int | None) -> int | None:
    """``--workers`` as the decoders take it: None (the default), or at least 1."""
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {workers}.",
                          "--workers 0 decodes in this process; leave it out for the default.")
    if workers is not None and workers > max_workers():
        raise ConfigError(f"--workers {workers} is more than imgcls starts (at most "
                          f"{max_workers()}: 4 per core, or 32).",
                          "Leave --workers out for the default, one per core.")
    # 0 = no pool of workers: one thread of this process decodes, in order.
    return 1 if workers == 0 else workers


def check(
    data: str | None = data_option(
        "A folder of class sub-folders, a .csv/.tsv file, or a dataset name like "
        "csv:labels.csv."),
    data_arg: str | None = positional_data(),
    path_column: str | None = typer.Option(None, "--path-column",
                                           help="CSV column with image paths or ids."),
    label_column: str | None = typer.Option(None, "--label-column", help="CSV label column."),
    image_root: str | None = typer.Option(None, "--image-root",
                                          help="Folder CSV paths are relative to."),
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option key=value."),
    min_size: int = typer.Option(DEFAULT_MIN_SIZE, "--min-size",
                                 help="Report images whose shorter side is below this."),
    quarantine_dir: Path | None = typer.Option(
        None, "--quarantine", help="Move unreadable files here (with a manifest.csv)."),
    workers: int | None = typer.Option(None, "--workers",
                                       help=f"{WORKERS_HELP}. Default: one per core, up to 8."),
    show: int = typer.Option(10, "--show", help="Example paths shown per finding."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Decode every file of a data set; report counts, unreadable files, mismatched extensions,
    non-RGB modes, tiny images, duplicates and train/val leakage.

    Files that resolve outside the data root (CSV rows like ../x.jpg, symlinks)
    are reported, and never moved by --quarantine. Exits with status 1 when
    unreadable files were found and left in place.
    """
    data, workers = pick_data(data, data_arg), check_workers(workers)
    options = _data_options(data_opt, path_column=path_column, label_column=label_column,
                            image_root=image_root)
    root = None
    if quarantine_dir is not None:  # refuse a bad target before the scan, not after it
        check_out_dir("--quarantine", quarantine_dir, input_paths([data])[0], writes=[MANIFEST])
        loader, source = resolve_loader(data)
        root = quarantine_root(source or data, loader, quarantine_dir, options.get("image_root"))
    report = check_data(data, options, min_size=min_size, workers=workers,
                        on_progress=None if as_json else progress("checking"))
    moved, kept = [], report.unreadable
    if root is not None and report.unreadable:
        inside, kept = split_by_root(report.unreadable, root)
        moved = quarantine(inside, quarantine_dir, root) if inside else []
    if as_json:
        typer.echo(json.dumps(report.to_dict() | {
            "quarantined": [[str(m.original), str(m.quarantined)] for m in moved],
            "not_quarantined": [str(path) for path, _ in kept if root is not None]}, indent=2))
    else:
        print_report(report, show)
        _say_quarantined(moved, kept if root is not None else [], quarantine_dir)
    if kept:
        raise typer.Exit(1)


def _say_quarantined(moved: list[Any], kept: list[tuple[Path, str]],
                     folder: Path | None) -> None:
    if moved:
        say(f"moved {len(moved)} unreadable files into {folder} "
            f"(listed in {Path(str(folder)) / MANIFEST})")
    if kept:
        say(f"left {len(kept)} unreadable files in place: they resolve outside the data root")
        for path, _ in kept:
            say(f"  {path}")


def _data_options(pairs: list[str], **columns: str | None) -> dict[str, Any]:
    options = parse_options(pairs, "--data-opt")
    options.update({key: value for key, value in columns.items() if value is not None})
    return options


def print_report(report: CheckReport, show: int) -> None:
    def group(paths: list[str]) -> str:  # --show bounds the paths of a group too
        more = f" (and {len(paths) - show} more)" if len(paths) > show else ""
        return " = ".join(paths[:show]) + more

    rate = report.files / report.seconds if report.seconds else 0.0
    say(f"checked {report.files} files of {report.source} ({report.loader}) in "
        f"{report.seconds:.1f} s ({rate:.0f} files/s)")
    for note in report.notes:
        say(f"  {note}")
    _counts(report)
    problems = 0
    sections: list[tuple[str, list[Any], Callable[[Any], str]]] = [
        ("unreadable files", report.unreadable, lambda item: f"{item[0]}: {item[1]}"),
        ("extension does not match the content", report.mismatched,
         lambda item: f"{item[0]} is {item[1]}"),
        (f"tiny images (shorter side under {report.min_size} px)", report.tiny,
         lambda item: f"{item[0]} ({item[1][0]}x{item[1][1]})"),
        ("exact duplicates (groups)", report.duplicates, group),
        ("duplicates across train and val (leakage)", report.leaks, group),
        ("identical files with different labels", report.conflicts, group),
        (f"files that resolve outside the data root {report.root}", report.outside, str),
    ]
    for title, items, describe in sections:
        if items:
            problems += 1
            _section(f"{title}: {len(items)}", [describe(_strs(i)) for i in items], show)
    if report.modes:
        problems += 1
        summary = ", ".join(f"{mode} {len(paths)}" for mode, paths in report.modes.items())
        lines = [f"{mode}: {path}" for mode, paths in report.modes.items() for path in paths]
        _section(f"not RGB (converted by the colour policy): {summary}", lines, show)
    if not problems:
        say("no problems found")


def _strs(item: Any) -> Any:
    if isinstance(item, list):
        return [str(p) for p in item]
    return item


CLASS_ROWS = 30  # a data set of 10,000 classes must not print 10,000 rows


def _counts(report: CheckReport) -> None:
    """Images per class and split: one row per class, the largest CLASS_ROWS classes."""
    splits = list(report.counts)
    totals = {name: sum(report.counts[s].get(name, 0) for s in splits) for name in report.classes}
    shown = sorted(report.classes, key=lambda name: -totals[name])[:CLASS_ROWS]
    rows = [[name, *(report.counts[s].get(name, 0) for s in splits), totals[name]]
            for name in shown]
    if len(report.classes) > len(shown):
        rows.append([f"... {len(report.classes) - len(shown)} more classes (--json for all)",
                     *([""] * (len(splits) + 1))])
    rows.append(["total", *(sum(report.counts[s].values()) for s in splits),
                 sum(totals.values())])
    print_table(("class", *splits, "total"), rows, right=(*splits, "total"))
    if report.task == "multilabel":
        say("multi-label: each image counts once per label it carries")
        for split, pairs in report.co_occurrence.items():
            top = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:10]
            say(f"  {split}: {report.without_labels.get(split, 0)} images without labels; "
                "labels together: " + (", ".join(f"{k} {v}" for k, v in top) or "none"))


def _section(title: str, lines: list[str], show: int) -> None:
    say(title)
    for line in lines[:show]:
        say(f"  {line}")
    if len(lines) > show:
        say(f"  ... and {len(lines) - show} more (--show {len(lines)} or --json for all)")


# --------------------------------------------------------------------------- data audit

AUDIT_MODEL = typer.Option(None, "--model", "-m", show_default=False,
                           help="Model each fold trains (imgcls models). Default: vgg-bn "
                           "with --model-opt width=0.5 --model-opt depth=3.")
AUDIT_FOLDS = typer.Option(DEFAULT_FOLDS, "--folds", help="Cross-validation folds: K "
                           "trainings, each on the other K-1 folds.")
AUDIT_EPOCHS = typer.Option(None, "--epochs", "-e", show_default=False,
                            help="Epochs per fold. Default: 10, or as many as give each "
                            "fold model 600 optimiser steps.")
AUDIT_IMG_SIZE = typer.Option(None, "--img-size", show_default=False,
                              help="Input size (default: the model's).")
AUDIT_SEED = typer.Option(None, "--seed", show_default=False,
                          help="Seed of the folds and of every fold's training. Default: 0.")
AUDIT_CONFIG = typer.Option(None, "--config", "-c", help="Training options of every fold (a "
                            "TOML file as for imgcls train --config).")
AUDIT_MODEL_OPT = typer.Option([], "--model-opt", help="Model option key=value (repeatable).")
AUDIT_PROBS = typer.Option(None, "--probs", help="Predicted probabilities of every class "
                           "(imgcls infer --top-k N -o preds.csv, or path,<class>... columns) "
                           "instead of training folds.")
AUDIT_SPLIT = typer.Option("all", "--split", help="Images to audit: all, train, val, or auto "
                           "(val if the data has one).")
AUDIT_OUT_DIR = typer.Option("audit", "--out-dir", help="Folder for label_issues.csv, "
                             "audit.html and the folds' runs.")
AUDIT_RELABEL = typer.Option(False, "--relabel", help="Also write relabelled.csv: every image, "
                             "flagged ones with the suggested label.")
AUDIT_QUARANTINE = typer.Option(None, "--quarantine", help="Copy flagged images into this "
                                "folder and write cleaned.csv without them.")
AUDIT_MOVE = typer.Option(False, "--move", help="With --quarantine: move the flagged images "
                          "instead of copying them.")
AUDIT_DUPLICATES = typer.Option(True, "--duplicates/--no-duplicates",
                                help="Look for near-duplicates across classes and train/val.")
AUDIT_DISTANCE = typer.Option(DEFAULT_MAX_DISTANCE, "--max-distance", help="Near-duplicates "
                              "differ in at most this many of their 64 perceptual-hash bits.")


AUDIT_FILES = ("label_issues.csv", "pred_probs.csv", "near_duplicates.csv", "audit.html",
               "relabelled.csv", "cleaned.csv")


def audit(
    data: str | None = data_option(), model: str | None = AUDIT_MODEL,
    folds: int = AUDIT_FOLDS, epochs: int | None = AUDIT_EPOCHS,
    img_size: int | None = AUDIT_IMG_SIZE, seed: int | None = AUDIT_SEED,
    config: str | None = AUDIT_CONFIG, model_opt: list[str] = AUDIT_MODEL_OPT,
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option key=value."),
    probs: str | None = AUDIT_PROBS, split: str = AUDIT_SPLIT, out_dir: str = AUDIT_OUT_DIR,
    output: str | None = output_is_a_file("data audit"), relabel: bool = AUDIT_RELABEL,
    quarantine_dir: Path | None = AUDIT_QUARANTINE, move: bool = AUDIT_MOVE,
    duplicates: bool = AUDIT_DUPLICATES, max_distance: int = AUDIT_DISTANCE,
    workers: int | None = typer.Option(None, "--workers",
                                       help=f"{WORKERS_HELP}. Default: one per core, up to 8."),
    show: int = typer.Option(10, "--show", help="Example paths shown per finding."),
) -> None:
    """Find likely wrong labels (cleanlab on out-of-fold predictions) and near-duplicates
    across classes or train/val; write label_issues.csv and audit.html.

    Never changes the data: --relabel and --quarantine write corrected CSVs to train
    on, and --quarantine copies the flagged images (moves them only with --move).
    """
    from ..audit.run import AuditOptions
    from .audit import Actions, run, train_config

    if move and quarantine_dir is None:
        raise ConfigError("--move needs --quarantine DIR.",
                          "Pass --quarantine DIR --move, or leave --move out.")
    files, folders = input_paths([data, probs, config])
    check_out_dir("--out-dir", out_dir, files, folders, writes=AUDIT_FILES)
    if quarantine_dir is not None:
        check_out_dir("--quarantine", quarantine_dir, files, writes=[MANIFEST, "copied.csv"])
    train, fixed = train_config(config, {"model": model, "epochs": epochs,
                                         "img_size": img_size, "seed": seed}, model_opt)
    options = AuditOptions(data=pick_data(data, None), data_options=parse_options(
        data_opt, "--data-opt"), split=split, folds=folds, train=train, probs=probs,
        out_dir=out_dir, duplicates=duplicates, max_distance=max_distance,
        workers=check_workers(workers), fixed=fixed)
    run(options, Actions(relabel=relabel, quarantine=quarantine_dir, move=move, show=show))


def prepare(
    source: Path = typer.Argument(..., help="The unpacked Kaggle train/ folder, or train.zip: "
                                            "files named <class>.<number>.<ext>."),
    out: Path = typer.Option(..., "--out-dir", help="New folder for train/ and val/."),
    train: int = typer.Option(1000, "--train", min=1, help="Training images per class."),
    val: int = typer.Option(250, "--val", min=0, help="Validation images per class."),
    rename: list[str] = typer.Option([], "--rename",
                                     help="Class folder name for a file-name prefix, "
                                          "e.g. cat=cats (repeatable)."),
) -> None:
    """Build train/ and val/ class folders from files named like cat.0.jpg (the Kaggle
    Dogs vs. Cats archive): per class, the lowest numbers train and the next validate.

    The defaults give the tutorial's 1,000 training and 250 validation images per class.
    """
    from ..data.prepare import prepare as prepare_folders

    names = dict(pair.partition("=")[::2] for pair in rename)
    if any(not old or not new or "/" in new or new in {".", ".."} for old, new in names.items()):
        raise ConfigError(f"--rename expects prefix=folder, got {' '.join(rename)!r}.",
                          "For example: --rename cat=cats --rename dog=dogs.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out-dir {out} exists and is not an empty folder.",
                          "Name a new folder: prepare never mixes its copies with other files.")
    files, folders = input_paths([source])
    check_out_dir("--out-dir", out, files, folders, holds_inputs=True)
    done = prepare_folders(source, out, train, val, names)
    for split, counts in done.counts.items():
        say(f"{split}: " + ", ".join(f"{n} {label}" for label, n in counts.items()))
    say(f"wrote {out}" + (f"; {done.skipped} files not named <class>.<number>.<ext> were "
                          "left out" if done.skipped else ""))
