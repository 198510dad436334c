"""imgcls infer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ..errors import ConfigError, OutputError
from ..infer.batch import InferOptions
from ..infer.engine import BACKENDS, DEFAULT_BACKEND
from ..infer.writers import Summary, errors_path_for, summary_dict
from ..io import atomic_write_text
from ..options import did_you_mean
from ..outputs import check_out_dir, check_outputs, input_paths
from ..registry import LOCAL_ENGINE, get_engine
from ..specs import EngineSpec
from .console import console, count, err_console, parse_options, printable
from .data import WORKERS_HELP, check_workers
from .inputs import warn_if_labelled_for_another_model

ENGINE_HELP = ("Where to run: local (this machine) or an engine a plugin adds, such as ray "
               "(imgcls-ray); `imgcls plugins --engines` lists them.")
THRESHOLD_OPTION = typer.Option(
    None, "--threshold", help="Multi-label models: one decision threshold for every class "
                              "instead of the per-class ones in the model.")
ENGINE_OPT_HELP = "Engine option key=value (repeatable), e.g. address=auto for ray."
TTA_OPTION = typer.Option("none", "--tta", metavar="[none|flip]",
                          help="Test-time augmentation: none, or flip (average each image's "
                               "logits with its mirror image's).")


def infer(
    model: Path = typer.Argument(..., help="An .onnx file or a best.safetensors checkpoint."),
    inputs: list[str] = typer.Argument(
        ..., help="Image files, folders, quoted globs, @list.txt (one path per line) or - "
                  "(paths on stdin)."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Predictions file (default: stdout)."),
    fmt: str = typer.Option("csv", "--format", "-f", metavar="[csv|jsonl|parquet]",
                            help="csv or jsonl; --engine ray also writes parquet."),
    top_k: int = typer.Option(1, "--top-k", "-k", help="How many ranked labels per image."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or tensorrt."),
    workers: int | None = typer.Option(
        None, "--workers", help=f"{WORKERS_HELP}. Default: one per core, up to 8 (32 with a GPU)."),
    decode: str = typer.Option(DEFAULT_BACKEND, "--decode", metavar=f"[{'|'.join(BACKENDS)}]",
                               help=f"Decode in {' or '.join(BACKENDS)} workers "
                                    "(thread with --workers 0; local engine)."),
    threads: int | None = typer.Option(
        None, "--threads", help="onnxruntime threads (default: the cores the workers leave)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Skip paths already in the output file and append."),
    shard: str | None = typer.Option(
        None, "--shard", help="i/n: only this machine's share of the inputs (0 <= i < n)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first unreadable image."),
    errors: Path | None = typer.Option(
        None, "--errors", help="Unreadable images CSV (default: <output>.errors.csv)."),
    summary_json: Path | None = typer.Option(None, "--summary-json",
                                             help="Also write the run summary as JSON."),
    tta: str = TTA_OPTION,
    threshold: float | None = THRESHOLD_OPTION,
    engine: str = typer.Option(LOCAL_ENGINE, "--engine", help=ENGINE_HELP),
    engine_opt: list[str] = typer.Option([], "--engine-opt", help=ENGINE_OPT_HELP),
) -> None:
    """Classify images with a model; writes path, label, confidence (and top-k) per image,
    or for a multi-label model path, labels (;-joined) and each class's probability."""
    _check_threads(threads)
    if workers == 0:  # no pool of processes: one thread of this process decodes
        decode = "thread"
    spec, engine_options = _engine(engine, engine_opt, fmt)
    _check_outputs(model, inputs, output, errors, summary_json, fmt)
    warn_if_labelled_for_another_model(model, inputs)
    options = InferOptions(output=output, fmt=fmt, top_k=top_k, batch_size=batch_size,
                           device=device, workers=check_workers(workers), backend=decode,
                           threads=threads, resume=resume, shard=shard, strict=strict,
                           errors_path=errors, tta=tta, threshold=threshold)
    summary = spec.run(model, inputs, options, **engine_options)
    _report(summary, output)
    if summary_json is not None:
        atomic_write_text(summary_json, json.dumps(summary_dict(summary), indent=2) + "\n")


def _check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}.",
                          "Leave --threads out for the default (the cores the workers leave).")


def _check_outputs(model: Path, inputs: list[str], output: Path | None, errors: Path | None,
                   summary_json: Path | None, fmt: str) -> None:
    files, folders = input_paths(inputs)
    derived = errors_path_for(output) if output is not None and errors is None else None
    folder_output = None
    if fmt == "parquet" and output is not None:  # a folder of parts (--engine ray)
        check_out_dir("-o", output, [model, *files], folders)
        output, folder_output = None, output
    check_outputs({"-o": output, "--errors": errors, "the errors file (-o ... .errors.csv)":
                   derived, "--summary-json": summary_json}, [model, *files], folders)
    if folder_output is not None:
        for flag, path in (("--errors", errors), ("--summary-json", summary_json)):
            if path is not None and Path(path).resolve().is_relative_to(folder_output.resolve()):
                raise OutputError(f"{flag} {path} is inside the -o folder {folder_output}.",
                                  f"Write {flag} outside {folder_output}.")


def _engine(name: str, pairs: list[str], fmt: str) -> tuple[EngineSpec, dict[str, Any]]:
    """The engine and its --engine-opt options, checked before anything runs."""
    # Only a plugin's engine loads the plugins: the local one starts without torch.
    spec = get_engine(name).spec
    options = parse_options(pairs, "--engine-opt")
    for key in options:
        if key not in spec.options:
            takes = (f"It takes {', '.join(sorted(spec.options))}." if spec.options
                     else "It takes none.")
            raise ConfigError(f"The {spec.name} engine has no option {key!r}.",
                              f"{did_you_mean(key, list(spec.options))}{takes}")
    if fmt not in spec.formats:
        raise ConfigError(f"The {spec.name} engine does not write --format {fmt}.",
                          f"Use --format {' or '.join(spec.formats)}"
                          + ("; --engine ray writes parquet." if fmt == "parquet" else "."))
    return spec, options


def _report(summary: Summary, output: Path | None) -> None:
    for failure in summary.failures:
        # Paths and reasons are data: text, never markup.
        err_console.print(f"[yellow]unreadable:[/yellow] {escape(printable(failure.path))}: "
                          f"{escape(printable(failure.reason))}",
                          highlight=False)
    if summary.failed:
        where = f" listed in {summary.errors_path}" if summary.errors_path else ""
        err_console.print(escape(f"{count(summary.failed, 'unreadable image')}{where}"),
                          highlight=False)
    # With predictions on stdout, the summary goes to stderr to keep stdout parseable.
    target = console if output is not None else err_console
    skipped = f", {summary.skipped} already done" if summary.skipped else ""
    target.print(escape(
        f"{count(summary.images, 'image')} classified in {summary.seconds:.2f}s "
        f"({summary.images_per_second:.0f} img/s; batch latency p50 {summary.p50_ms:.1f} ms, "
        f"p95 {summary.p95_ms:.1f} ms) on {summary.provider}, {summary.failed} unreadable"
        f"{skipped}" + (f"; predictions in {output}" if output else "")), highlight=False)
