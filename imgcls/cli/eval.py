"""imgcls eval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ..outputs import check_out_dir, input_paths
from .console import console, parse_options, print_table, print_warning, say
from .data import data_option, output_is_a_file, pick_data, positional_data

EVAL_FILES = ("metrics.json", "per_class.csv", "confusion.csv", "confusion.png",
              "misclassified.csv")


def evaluate(
    model: str = typer.Argument(..., help="A best.safetensors checkpoint or an .onnx file."),
    data: str | None = data_option(
        "The labelled images (default: the data the model was trained on, as its manifest "
        "records it; with --split auto its validation split)."),
    data_arg: str | None = positional_data(),
    out_dir: str | None = typer.Option(
        None, "--out-dir", help="Folder for the outputs (default: eval/ beside the model)."),
    # The older spelling of --out-dir: the same folder, so it keeps working.
    out: str | None = typer.Option(None, "--out", hidden=True),
    output: str | None = output_is_a_file("eval"),
    split: str = typer.Option("auto", "--split", metavar="[auto|val|train|all]",
                              help="auto (val if the data has one, else all), val, train, all."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="k of the top-k accuracy."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option key=value."),
    tta: str = typer.Option("none", "--tta", metavar="[none|flip]",
                            help="Test-time augmentation: none, or flip "
                            "(average each image's logits with its mirror image's)."),
) -> None:
    """Measure a model on labelled images; write metrics, confusion matrix and mistakes."""
    from ..evaluate import evaluate_file, write_evaluation  # imports torch
    from ..manifest import manifest_task, read_manifest

    data = pick_data(data, data_arg, default="")
    options = parse_options(data_opt, "--data-opt")
    if not data:
        data, options = recorded_data(model, options)
    folder = Path(out_dir or out or Path(model).parent / "eval")
    files, folders = input_paths([model, data])
    check_out_dir("--out-dir", folder, files, folders, writes=EVAL_FILES)
    if Path(model).is_file() and manifest_task(read_manifest(model)) == "multilabel":
        _evaluate_multilabel(model, data, out_dir or out, split, batch_size, device, options,
                             tta)
        return
    evaluation, _ = evaluate_file(model, data, device=device, split=split,
                                  batch_size=batch_size, top_k=top_k,
                                  data_options=options, tta=tta)
    paths = write_evaluation(evaluation, folder, extra={"model": str(model), "data": data,
                                                         "split": split, "tta": tta})
    summary = evaluation.summary()
    print_metrics(summary)
    for path, reason in evaluation.failures:
        print_warning(f"skipped unreadable image {path}: {reason}")
    console.print(escape(f"wrote {', '.join(p.name for p in paths.values())} to {folder}"),
                  highlight=False)


def recorded_data(model: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """No --data: the data the model was trained on, from its manifest (options given on
    the command line override the recorded ones)."""
    from ..errors import ConfigError
    from ..manifest import read_manifest

    hint = ("Name the images: --data path/to/images (a folder of class sub-folders), a .csv "
            "file or a dataset.")
    dataset = read_manifest(model).get("dataset") or {}
    if not dataset.get("data"):
        raise ConfigError(f"Missing --data: {model} does not record the data it was trained "
                          "on.", hint)
    say(f"data: {dataset['data']} (the model's training data, recorded in {model})")
    return str(dataset["data"]), {**(dataset.get("options") or {}), **options}


def _evaluate_multilabel(model: str, data: str, out_dir: str | None, split: str,
                         batch_size: int, device: str, options: dict[str, Any], tta: str
                         ) -> None:
    from ..evaluate_multilabel import evaluate_multilabel, write_multilabel_evaluation
    from ..infer.runners import open_model

    runner = open_model(model, device, tta=tta)
    evaluation = evaluate_multilabel(runner, data, split, batch_size, options)
    folder = Path(out_dir or Path(model).parent / "eval")
    paths = write_multilabel_evaluation(evaluation, folder, extra={
        "model": str(model), "data": data, "split": split, "tta": tta})
    summary = evaluation.summary()
    numbers = ("AP", "threshold", "precision", "recall", "F1", "support")
    print_table(("class", *numbers),
                ((row["class"], "n/a" if row["ap"] is None else f"{row['ap']:.3f}",
                  f"{row['threshold']:.3f}", f"{row['precision']:.3f}", f"{row['recall']:.3f}",
                  f"{row['f1']:.3f}", row["support"]) for row in summary["per_class"]),
                right=numbers)
    console.print(f"images {summary['images']}  mAP {summary['map']:.3f}  exact match "
                  f"{summary['exact_match']:.2%}  micro-F1 {summary['micro_f1']:.3f}  macro-F1 "
                  f"{summary['macro_f1']:.3f}  without labels {summary['without_labels']}",
                  highlight=False)
    for path, reason in evaluation.failures:
        print_warning(f"skipped unreadable image {path}: {reason}")
    console.print(escape(f"wrote {', '.join(p.name for p in paths.values())} to {folder}"),
                  highlight=False)


def print_metrics(summary: dict[str, Any]) -> None:
    """Per-class table, then the headline metrics."""
    numbers = ("precision", "recall", "F1", "support")
    print_table(("class", *numbers),
                ((row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}",
                  f"{row['f1']:.3f}", row["support"]) for row in summary["per_class"]),
                right=numbers)
    headline = [f"images {summary['images']}", f"accuracy {summary['accuracy']:.2%}"]
    headline += [f"{key.replace('_accuracy', '')} {value:.2%}" for key, value in summary.items()
                 if key.startswith("top") and key.endswith("_accuracy")]
    headline += [f"macro-F1 {summary['macro_f1']:.3f}", f"loss {summary['loss']:.4f}"]
    console.print("  ".join(headline), highlight=False)
