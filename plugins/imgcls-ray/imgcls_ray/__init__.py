"""``imgcls infer --engine ray``: batch inference as a Ray Data pipeline.

Inputs are listed on the driver (local folders, globs, @lists, and any URI that
pyarrow's filesystems read, such as s3://), decoded by the shared imgcls decoder in
``map_batches`` tasks, classified by a pool of onnxruntime actors (one session each,
a GPU each on a CUDA cluster), and written by the driver: one CSV or JSONL file as
``imgcls infer`` writes it, or a Parquet dataset of part files, each written
atomically so that ``--resume`` after an interrupted run neither repeats nor misses
an image.

Importing this module does not import Ray: every other imgcls command loads the
plugin, and only ``--engine ray`` pays Ray's start-up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from imgcls import hookimpl
from imgcls.specs import EngineSpec

FORMATS = ("csv", "jsonl", "parquet")
OPTIONS = {
    "address": "The Ray cluster to join: auto (the one `ray start` started on this machine), "
               "HOST:PORT or ray://HOST:10001. Default: $RAY_ADDRESS, else a local cluster "
               "started for this run and stopped after it.",
    "num_cpus": "CPUs of the local cluster (default: every usable core).",
    "actors": "onnxruntime actors, one session each (default: one per GPU on a CUDA "
              "cluster, else one per 4 CPUs, at least one).",
    "part_rows": "Rows per Parquet part file (default 10000); an interrupted run redoes "
                 "at most the part it was filling.",
}


def run(model: str | os.PathLike, inputs: Sequence[str], options: Any, **engine_options: Any
        ) -> Any:
    """The engine: see :func:`imgcls_ray.engine.run_ray`."""
    from .engine import run_ray

    return run_ray(model, inputs, options, **engine_options)


RAY = EngineSpec("ray", run, "A Ray Data pipeline: decode tasks, onnxruntime actors "
                             "(a local cluster, or --engine-opt address=...).",
                 options=OPTIONS, formats=FORMATS)


@hookimpl
def register_engines(register: Any) -> None:
    register(RAY)
