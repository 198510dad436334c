"""The built-in inference engine, ``local``: this machine's decode workers and onnxruntime.

Other engines (``ray`` from imgcls-ray) register through the same hook.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imgcls import hookimpl
from imgcls.specs import EngineSpec

if TYPE_CHECKING:
    from imgcls.infer.batch import InferOptions
    from imgcls.infer.writers import Summary


def run_local(model: str | os.PathLike, inputs: Sequence[str], options: InferOptions,
              **engine_options: Any) -> Summary:
    """``imgcls infer`` on this machine: streamed decode workers feeding onnxruntime."""
    from imgcls.infer.batch import run_inference

    if engine_options:  # the CLI checks the keys; this guards calls from Python
        from imgcls.errors import ConfigError

        raise ConfigError(f"The local engine takes no engine options, got "
                          f"{', '.join(sorted(engine_options))}.",
                          "Leave --engine-opt out, or pick another --engine.")
    return run_inference(model, inputs, options)


LOCAL = EngineSpec("local", run_local,
                   "This machine: decode workers and onnxruntime (CPU, CUDA or TensorRT).")


@hookimpl
def register_engines(register: Any) -> None:
    register(LOCAL)
