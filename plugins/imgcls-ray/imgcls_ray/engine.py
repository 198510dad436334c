"""The Ray engine's driver: list, skip what is done, run the pipeline, write the rows.

::

    paths (driver) -> blocks -> map_batches(decode_batch)   tasks, the shared decoder
                             -> map_batches(Classify)       actor pool, onnxruntime
                             -> driver: CSV / JSONL (infer's writer) or Parquet parts

The driver writes every row: results are small (a path and k labels), so the output
lives where the command runs, as with ``imgcls infer``, also on a remote cluster.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgcls.errors import ConfigError
from imgcls.infer.batch import InferOptions, label_set_columns
from imgcls.infer.engine import CHUNK, EngineStats, Failure, Prediction, ranked_labels
from imgcls.infer.runners import OnnxRunner, existing_model, with_tta
from imgcls.infer.sources import PathSet, in_shard, parse_shard
from imgcls.infer.writers import Summary, errors_path_for, paths_done, write_predictions
from imgcls.specs import Preprocess

from . import FORMATS
from .cluster import connected, pool_size, unwrap_ray_errors
from .inputs import check_all, list_inputs
from .output import parquet_done, prepare, write_parquet
from .stages import Classify, decode_batch, rank_columns

DEFAULT_PART_ROWS = 10_000
# What a decode task's worker may use: Python with numpy and Pillow (about 120 MiB) and
# one large photo decoded at full size before it is resized. Tasks and actors that
# reserve different resources also stay apart: Ray Data would otherwise fuse the decode
# map into the actors after it, and the few actors (one per GPU) would decode while the
# cluster's other CPUs idled.
DECODE_MEMORY = 512 * 2**20


@dataclass
class Job:
    """What the driver worked out before any cluster starts."""

    model: Path
    options: InferOptions
    preprocess: Preprocess
    top_k: int
    todo: list[str]
    unreadable: list[Failure]
    skipped: int
    classes: list[str] | None = None  # a multi-label model's: rows carry label sets


def run_ray(model: str | os.PathLike, inputs: Sequence[str], options: InferOptions, *,
            address: str | None = None, num_cpus: int | None = None,
            actors: int | None = None, part_rows: int = DEFAULT_PART_ROWS) -> Summary:
    """Classify ``inputs`` on a Ray cluster into ``options.output``; returns the Summary."""
    _check(options, num_cpus, actors, part_rows)
    job = plan(model, inputs, options)
    if job.todo:
        summary = _run_pipeline(job, address, num_cpus, actors, part_rows)
    else:  # a finished run resumed: nothing for a cluster to do
        summary = _write(iter(job.unreadable), job, part_rows, EngineStats())
        summary.provider = "ray (not started: every image is done)"
    summary.skipped = job.skipped
    if summary.failed == 0:
        summary.errors_path = None
    return summary


def _run_pipeline(job: Job, address: str | None, num_cpus: int | None, actors: int | None,
                  part_rows: int) -> Summary:
    options = job.options
    with connected(address, num_cpus) as cluster:
        size, gpus = pool_size(cluster, options.device, actors, options.threads or 1)
        stats = EngineStats()
        providers: set[str] = set()
        # Closed as soon as writing stops, also on an error: that stops the pipeline.
        with contextlib.closing(_results(job, size, gpus, stats, providers)) as results:
            summary = _write(results, job, part_rows, stats)
    summary.provider = (f"ray, {size} actor{'s' if size > 1 else ''}"
                        + (f" ({', '.join(sorted(providers))})" if providers else ""))
    return summary


def _check(options: InferOptions, num_cpus: Any, actors: Any, part_rows: Any) -> None:
    options.validate(FORMATS)
    for name, value in (("num_cpus", num_cpus), ("actors", actors), ("part_rows", part_rows)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise ConfigError(f"--engine-opt {name} must be a whole number of at least 1, "
                              f"got {value!r}.", f"For example: --engine-opt {name}=2.")
    if options.fmt == "parquet" and options.output is None:
        raise ConfigError("--format parquet needs an output folder.", "Add -o preds.parquet.")


def plan(model: str | os.PathLike, inputs: Sequence[str], options: InferOptions) -> Job:
    """Open the model and list the inputs here, so mistakes show before Ray starts."""
    path = existing_model(model)
    if path.suffix.lower() != ".onnx":
        raise ConfigError(f"The ray engine runs .onnx models; {path.name} is not one.",
                          f"Export it first: imgcls export onnx {path} -o model.onnx")
    runner = with_tta(OnnxRunner(path, "cpu", 1), options.tta)  # a model flipping twice fails here
    top_k = min(options.top_k, len(runner.manifest["classes"]))
    classes = label_set_columns(runner.manifest, options.top_k)
    shard = parse_shard(options.shard) if options.shard else (0, 1)
    check_all(inputs)
    unreadable: list[Failure] = []

    def on_error(entry: str, reason: str) -> None:
        if next(in_shard([entry], *shard), None) is not None:  # only its shard reports it
            unreadable.append(Failure(entry, reason))

    done = _done(options, top_k, classes)
    todo, skipped = [], 0
    for entry in in_shard(list_inputs(inputs, on_error), *shard):
        if entry in done:
            skipped += 1
        else:
            todo.append(entry)
    return Job(path, options, runner.preprocess, top_k, todo, unreadable, skipped, classes)


def _done(options: InferOptions, top_k: int, classes: list[str] | None = None) -> PathSet:
    output = options.output
    if output is None:
        return PathSet()
    if options.fmt == "parquet":
        prepare(output)
        return parquet_done(output, top_k, classes) if options.resume else PathSet()
    return paths_done(output, options.fmt, top_k, classes) if options.resume else PathSet()


def _dataset(job: Job, size: int, gpus: float) -> Any:
    import pyarrow as pa
    import ray

    options = job.options
    rows = max(CHUNK, 4 * options.batch_size)  # paths per block: one decode task each
    blocks = [pa.table({"path": pa.array(job.todo[i:i + rows], pa.string())})
              for i in range(0, len(job.todo), rows)]
    threads = options.threads or 1
    return (ray.data.from_arrow(blocks)
            .map_batches(decode_batch, fn_kwargs={"preprocess": job.preprocess},
                         batch_size=CHUNK, batch_format="numpy", num_cpus=1,
                         concurrency=options.workers, memory=DECODE_MEMORY)
            .map_batches(Classify, fn_constructor_kwargs={
                             "model": job.model.read_bytes(),
                             "device": "cpu" if not gpus else options.device,
                             "threads": threads, "top_k": job.top_k, "tta": options.tta,
                             "threshold": options.threshold},
                         batch_size=options.batch_size, batch_format="numpy",
                         compute=ray.data.ActorPoolStrategy(size=size),
                         num_cpus=threads, num_gpus=gpus))


def _results(job: Job, size: int, gpus: float, stats: EngineStats,
             providers: set[str]) -> Iterator[Prediction | Failure]:
    """Listing failures first, then each block's rows as the pipeline delivers them."""
    yield from job.unreadable
    stats.failed += len(job.unreadable)
    columns = rank_columns(job.top_k, job.classes)
    with unwrap_ray_errors():
        batches = _dataset(job, size, gpus).iter_batches(batch_size=None, batch_format="numpy")
        for batch in batches:
            yield from _rows(batch, columns, stats, providers, job)
    stats.finished = time.perf_counter()


def _rows(batch: dict, columns: list[str], stats: EngineStats,
          providers: set[str], job: Job) -> Iterator[Prediction | Failure]:
    good = 0
    for i, (path, error) in enumerate(zip(batch["path"], batch["error"], strict=True)):
        if error:
            stats.failed += 1
            yield Failure(str(path), str(error))
            continue
        good += 1
        if job.classes is not None:  # the stage's labels and probabilities, as they came
            probs = [float(batch[c][i]) for c in columns[1:]]
            (labels, scores), = ranked_labels(np.asarray([probs]), job.classes, job.top_k)
            chosen = str(batch[columns[0]][i])
            yield Prediction(str(path), labels, scores,
                             tuple(chosen.split(";")) if chosen else (), probs)
            continue
        yield Prediction(str(path), [str(batch[c][i]) for c in columns[0::2]],
                         [float(batch[c][i]) for c in columns[1::2]])
    if good:
        # Each row carries its actor batch's time; a block may hold several batches.
        for seconds in set(float(s) for s in batch["batch_seconds"]):
            stats.add_batch(0, seconds)
        stats.images += good
        providers.update(str(p) for p in set(batch["provider"]))


def _write(results: Iterator[Prediction | Failure], job: Job, part_rows: int,
           stats: EngineStats) -> Summary:
    options = job.options
    errors_path = options.errors_path or (
        errors_path_for(options.output) if options.output else None)
    if options.fmt == "parquet":
        assert options.output is not None
        return write_parquet(results, options.output, job.top_k, part_rows=part_rows,
                             append=options.resume, errors_path=errors_path,
                             strict=options.strict, stats=stats, classes=job.classes)
    return write_predictions(results, options.output, options.fmt, job.top_k,
                             append=options.resume, errors_path=errors_path,
                             strict=options.strict, stats=stats, classes=job.classes)
