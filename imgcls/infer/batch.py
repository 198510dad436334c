"""The ``imgcls infer`` job: stream inputs through a model into a predictions file."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..manifest import manifest_task
from ..outputs import locked_output
from ..system import default_workers, usable_cores
from .engine import DEFAULT_BACKEND, EngineStats, Failure, Prediction, predict_stream
from .providers import CPU, choose_providers
from .runners import check_tta, existing_model, open_model
from .sources import check_inputs, in_shard, iter_paths, parse_shard

if TYPE_CHECKING:
    from .writers import Summary


@dataclass
class InferOptions:
    """Everything ``imgcls infer`` takes besides the model and inputs."""

    output: Path | None = None
    fmt: str = "csv"
    top_k: int = 1
    batch_size: int = 64
    device: str = "auto"
    workers: int | None = None
    backend: str = DEFAULT_BACKEND
    threads: int | None = None
    resume: bool = False
    shard: str | None = None
    strict: bool = False
    errors_path: Path | None = None
    tta: str = "none"  # "flip": average each image's logits with its mirror image's
    threshold: float | None = None  # multi-label: replaces every per-class threshold

    def validate(self, formats: Sequence[str] | None = None) -> None:
        """Check the options every engine shares; ``formats``: what the engine writes."""
        from .writers import FORMATS

        formats = tuple(formats or FORMATS)
        if self.fmt not in formats:
            raise ConfigError(f"Unknown --format {self.fmt!r}.",
                              f"Use --format {' or --format '.join(formats)}.")
        if self.batch_size < 1 or self.top_k < 1:
            raise ConfigError("--batch-size and --top-k must be at least 1.",
                              "For example: -b 64 -k 1.")
        if self.resume and self.output is None:
            raise ConfigError("--resume needs an output file.", "Add -o preds.csv.")
        check_tta(self.tta)


def _count_skipped(paths: Iterable[str], done: Any, skipped: list[int]) -> Iterator[str]:
    for path in paths:
        if path in done:
            skipped[0] += 1
        else:
            yield path


class _Stream:
    """Numbers paths in input order and merges in the entries the sources could not read.

    The engine yields a failure as soon as its chunk is decoded, before the images
    ahead of it in the same batch are classified; ``--strict`` uses the numbers to
    write those images first, then stop at the failing file.
    """

    def __init__(self, shard: tuple[int, int], strict: bool) -> None:
        self.shard, self.strict = shard, strict
        self.count = 0
        self.order: dict[str, deque[int]] = {}
        self.unread: deque[tuple[int, Failure]] = deque()

    def unreadable(self, path: str, reason: str) -> None:
        if next(in_shard([path], *self.shard), None) is not None:  # only its shard reports it
            self.unread.append((self.count, Failure(path, reason)))
            self.count += 1

    def paths(self, paths: Iterable[str]) -> Iterator[str]:
        for path in paths:
            if self.strict:  # only --strict needs the numbers; they cost memory
                self.order.setdefault(path, deque()).append(self.count)
            self.count += 1
            yield path

    def _merged(self, results: Iterable[Prediction | Failure]
                ) -> Iterator[tuple[int, Prediction | Failure]]:
        for result in results:
            while self.unread:
                yield self.unread.popleft()
            seqs = self.order.get(result.path)
            seq = seqs.popleft() if seqs else -1
            if seqs is not None and not seqs:
                del self.order[result.path]
            yield seq, result
        yield from self.unread

    def results(self, results: Iterable[Prediction | Failure]
                ) -> Iterator[Prediction | Failure]:
        """All results; under ``strict``, those before the first failing file, then it."""
        if not self.strict:
            yield from (result for _, result in self._merged(results))
            return
        held: tuple[int, Failure] | None = None
        for seq, result in self._merged(results):
            if isinstance(result, Failure):
                held = (seq, result) if held is None or seq < held[0] else held
            elif held is None or seq < held[0]:
                yield result
            else:
                break  # predictions come in input order: none before the failure is left
        if held is not None:
            yield held[1]


def run_inference(model: str | os.PathLike, inputs: Sequence[str],
                  options: InferOptions) -> Summary:
    """Classify ``inputs`` into ``options.output``; returns the predictions Summary."""
    from .engine import DecodePool
    from .writers import errors_path_for, paths_done, write_predictions

    options.validate()
    shard = parse_shard(options.shard) if options.shard else (0, 1)
    existing_model(model)
    check_inputs(inputs)
    errors_path = options.errors_path or (
        errors_path_for(options.output) if options.output else None)
    gpu = choose_providers(options.device)[0] != CPU
    workers = options.workers or default_workers(gpu)
    # Start the decode workers before onnxruntime starts its threads: forking a
    # single-threaded process is the safe kind of fork.
    lock = options.output if options.resume else None  # two appenders would interleave
    with locked_output(lock), DecodePool(workers, options.backend) as pool:
        runner = open_model(model, options.device, options.threads or _ort_threads(workers),
                            options.tta)
        k = min(options.top_k, len(runner.manifest["classes"]))
        classes = label_set_columns(runner.manifest, options.top_k)
        stream = _Stream(shard, options.strict)
        paths = in_shard(iter_paths(inputs, stream.unreadable), *shard)
        skipped = [0]
        if options.resume and options.output is not None:
            paths = _count_skipped(paths, paths_done(options.output, options.fmt, k, classes),
                                   skipped)
        stats = EngineStats()
        results = stream.results(predict_stream(runner, stream.paths(paths), options.batch_size,
                                                k, stats=stats, pool=pool,
                                                threshold=options.threshold))
        summary = write_predictions(results, options.output, options.fmt, k,
                                    append=options.resume, errors_path=errors_path,
                                    strict=options.strict, stats=stats, classes=classes)
    summary.skipped = skipped[0]
    summary.provider = runner.providers[0]
    if summary.failed == 0:
        summary.errors_path = None
    return summary


def label_set_columns(manifest: dict[str, Any], top_k: int = 1) -> list[str] | None:
    """A multi-label model's classes (its rows list label sets), else None (top-k rows)."""
    if manifest_task(manifest) != "multilabel":
        return None
    if top_k > 1:
        raise ConfigError("--top-k ranks one label per image; a multi-label model's rows "
                          "hold its label set and every class's probability.",
                          "Leave out --top-k.")
    return list(manifest["classes"])


def _ort_threads(workers: int) -> int:
    # On the CPU, decode workers and onnxruntime share the cores: give onnxruntime
    # what the workers leave (at least one), not a second thread per core.
    return max(1, usable_cores() - workers)
