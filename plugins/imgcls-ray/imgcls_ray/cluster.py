"""Joining or starting the Ray cluster, quietly, and Ray's errors as imgcls errors.

Ray is chatty: every run logs its execution plan and progress lines. Those go to the
session's log files (``/tmp/ray/session_latest/logs``) instead of the terminal; Ray's
warnings and every error still reach the user.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

from imgcls.errors import ConfigError, DeviceError, ImgclsError
from imgcls.system import usable_cores

LOCAL = "local"
_LOGS_HINT = "Run with --debug for the traceback; workers' logs: /tmp/ray/session_latest/logs."


class RayEngineError(ImgclsError):
    """Ray could not start, join or run the pipeline."""


@contextlib.contextmanager
def connected(address: str | None, num_cpus: int | None) -> Iterator[dict[str, Any]]:
    """The cluster's resources while connected: joins ``address``, $RAY_ADDRESS or starts one.

    A cluster this process already joined (a notebook's ``ray.init()``) is used as it
    is and left running; one started or joined here is left again at the end.
    """
    import ray

    if ray.is_initialized():
        if address is not None or num_cpus is not None:
            raise ConfigError("This process is already connected to a Ray cluster, so "
                              "--engine-opt address and num_cpus do not apply.",
                              "Leave them out to use the cluster it joined.")
        _quiet_data()
        yield {**ray.cluster_resources(), "local": False}
        return
    target = address or os.environ.get("RAY_ADDRESS") or LOCAL
    _init(target, num_cpus)
    try:
        _quiet_data()
        yield {**ray.cluster_resources(), "local": target == LOCAL}
    finally:
        ray.shutdown()


def _init(target: str, num_cpus: int | None) -> None:
    import ray

    extra: dict[str, Any] = {}
    if target == LOCAL:
        extra = {"num_cpus": num_cpus or usable_cores(), "include_dashboard": False}
    elif num_cpus is not None:
        raise ConfigError(f"--engine-opt num_cpus sizes a local cluster, not the one at "
                          f"{target}.", "Leave num_cpus out, or address to start one here.")
    try:
        # Workers' stdout and stderr stay in the session logs; their exceptions still
        # come back to the driver with the task that failed.
        ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING, **extra)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = ("start a local Ray cluster" if target == LOCAL
                 else f"join the Ray cluster at {target}")
        raise RayEngineError(f"Could not {where}: {exc}",
                             "Check `ray status` on the head node, or leave address out to "
                             "start a local cluster.") from exc


def _quiet_data() -> None:
    import ray.data

    # Off a terminal Ray Data logs its progress instead of drawing bars: those lines go
    # to the session's log file with the rest of its INFO records.
    ray.data.DataContext.get_current().print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:
        # The console handler; the file handlers keep the full log in the session folder.
        if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler):
            handler.setLevel(max(handler.level, logging.WARNING))


def pool_size(cluster: dict[str, Any], device: str, actors: int | None,
              threads: int) -> tuple[int, float]:
    """(actors, GPUs per actor): one actor per GPU on CUDA, else one per 4 CPUs."""
    cpus, gpus = int(cluster.get("CPU", 1)), int(cluster.get("GPU", 0))
    if device in ("cuda", "tensorrt") and not gpus:
        raise DeviceError(f"--device {device}: the Ray cluster has no GPU.",
                          "Use --device auto or cpu, or join a cluster with GPUs.")
    on_gpu = device != "cpu" and gpus > 0
    size = actors or (gpus if on_gpu else max(1, cpus // 4))
    if size * threads >= cpus:
        # The decode tasks need a CPU the actors leave free, or the pipeline waits forever.
        message = (f"{size} actors x {threads} threads take all {cpus} CPUs of the cluster; "
                   "decoding needs at least one more.")
        hint = "Lower --engine-opt actors or --threads, or add CPUs to the cluster."
        if cluster.get("local"):
            raise ConfigError(message, hint)
        warnings.warn(f"{message} {hint} (An autoscaling cluster may add them.)", stacklevel=2)
    return size, 1.0 if on_gpu else 0.0


def _imgcls_cause(exc: BaseException) -> ImgclsError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ImgclsError) and not hasattr(seen, "cause"):
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    return None


@contextlib.contextmanager
def unwrap_ray_errors() -> Iterator[None]:
    """A task's ImgclsError as itself (message and hint); any other Ray error, named."""
    import ray.exceptions

    try:
        yield
    except ray.exceptions.RayError as exc:
        cause = _imgcls_cause(exc)
        if cause is not None:
            raise cause from exc
        first = str(exc).strip().splitlines()
        raise RayEngineError(f"The Ray pipeline failed: {type(exc).__name__}: "
                             f"{first[-1] if first else exc!r}", _LOGS_HINT) from exc
