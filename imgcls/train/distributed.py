"""DistributedDataParallel under ``torchrun``: process group, samplers, reductions.

Without torchrun's environment (WORLD_SIZE unset or 1) everything here is a
no-op, so fit() reads the same either way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from ..errors import DeviceError
from ..system import resolve_device


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str) -> tuple[DistEnv, torch.device]:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) and pick this rank's device."""
    if not launched_by_torchrun():
        return DistEnv(), resolve_device(device_name)
    env = DistEnv(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)),
                  int(os.environ["WORLD_SIZE"]))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise DeviceError(f"Rank {env.rank} needs GPU {env.local_rank}, but only "
                              f"{torch.cuda.device_count()} are visible.",
                              "Use --nproc-per-node at most the number of GPUs.")
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(minutes=30))
    return env, device


def cleanup(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    """The model DDP-wrapped when distributed; otherwise the model itself."""
    if not env.enabled:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def all_reduce_sum(values: torch.Tensor, env: DistEnv, device: torch.device) -> torch.Tensor:
    """Element-wise sum over all ranks (float64 counts stay exact)."""
    if not env.enabled:
        return values
    # nccl reduces only CUDA tensors; gloo only CPU ones.
    moved = values.to(device if device.type == "cuda" else "cpu")
    dist.all_reduce(moved)
    return moved.cpu()


def all_finite(loss: torch.Tensor, env: DistEnv) -> bool:
    """Whether the loss is finite on every rank: all must skip a step, or none, or DDP hangs."""
    finite = torch.isfinite(loss.detach()).all().to(torch.float32)
    if env.enabled:
        finite = finite.to(loss.device if loss.device.type == "cuda" else "cpu")
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def broadcast_object(value: object, env: DistEnv) -> object:
    """Rank 0's ``value`` on every rank."""
    if not env.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


class EpochSampler(Sampler[int]):
    """Seeded per-epoch order, optionally class-balanced, split across ranks.

    The order depends only on (seed, epoch), so a resumed run sees the same
    batches. Every rank gets the same number of indices, as DDP needs.
    """

    def __init__(self, size: int, seed: int, env: DistEnv,
                 weights: np.ndarray | None = None) -> None:
        self.size = size
        self.seed = seed
        self.env = env
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.per_rank = math.ceil(size / env.world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        total = self.per_rank * self.env.world_size
        if self.weights is not None:
            order = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        else:
            order = torch.randperm(self.size, generator=generator)
            order = order.repeat(math.ceil(total / self.size))[:total]
        return iter(order[self.env.rank::self.env.world_size].tolist())


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: each sample is evaluated exactly once."""

    def __init__(self, size: int, env: DistEnv) -> None:
        self.indices = list(range(env.rank, size, env.world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def with_sampler(loader: DataLoader, sampler: Sampler) -> DataLoader:
    """The same loader (dataset, batch size, workers, collate) drawing from ``sampler``."""
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler,
        num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        worker_init_fn=loader.worker_init_fn, generator=loader.generator,
        persistent_workers=loader.persistent_workers, prefetch_factor=loader.prefetch_factor,
    )
