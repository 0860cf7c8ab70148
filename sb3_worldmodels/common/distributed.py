"""torch.distributed set-up for pre-training under ``torchrun`` (DDP; gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node N -m sb3_worldmodels.pretrain ...`` starts ``N`` processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each; :func:`init_distributed` reads them and
joins the process group. Without them (a plain ``python`` run) it describes a single process and starts nothing, so
the same code runs on one machine and on many. The helpers below are no-ops in a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "all_gather_object",
    "all_reduce_mean",
    "barrier",
    "broadcast_buffers",
    "cleanup",
    "init_distributed",
    "is_distributed",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run.

    :param rank: global rank (0 in a single process).
    :param world_size: number of processes.
    :param local_rank: rank on this machine (picks the GPU).
    :param device: the device this process computes on.
    :param is_main: ``rank == 0``: the process that logs and writes checkpoints.
    :param initialized_here: :func:`init_distributed` started the process group (so :func:`cleanup` may end it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool
    initialized_here: bool = False


def is_distributed() -> bool:
    """True when a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"Environment variable {name}={value!r} is not an integer; torchrun sets it.") from exc


def init_distributed(device: torch.device | str = "auto", backend: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes through ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``.

    Without these variables (or with ``WORLD_SIZE=1``) this is a single process and no group is started. A group
    that is already running is reused (and left to its owner to end).

    :param device: ``"auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; or an explicit device
        (``"cpu"`` forces gloo even on a GPU machine).
    :param backend: ``None``: NCCL for CUDA devices, gloo for the CPU.
    :return: rank, world size, local rank, device and whether this is the main process.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world_size}; launch with torchrun.")
    if str(device) == "auto":
        resolved = torch.device(f"cuda:{local_rank % torch.cuda.device_count()}" if torch.cuda.is_available()
                                else "cpu")
    else:
        resolved = torch.device(device)
        if resolved.type == "cuda" and resolved.index is None:
            resolved = torch.device(f"cuda:{local_rank % max(torch.cuda.device_count(), 1)}")
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    initialized_here = False
    if world_size > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise RuntimeError("torch.distributed is not available in this PyTorch build; run a single process.")
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(f"WORLD_SIZE={world_size} but {missing} are not set; launch with "
                               "`torchrun --nproc_per_node N -m sb3_worldmodels.pretrain ...`.")
        backend = backend or ("nccl" if resolved.type == "cuda" else "gloo")
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                device_id=resolved if backend == "nccl" else None)
        initialized_here = True
    return DistInfo(rank, world_size, local_rank, resolved, rank == 0, initialized_here)


def cleanup(info: DistInfo | None = None) -> None:
    """End the process group (only the one :func:`init_distributed` started when ``info`` is given)."""
    if dist.is_available() and dist.is_initialized() and (info is None or info.initialized_here):
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_mean(metrics: dict[str, torch.Tensor | float], device: torch.device | None = None) -> dict[str, float]:
    """Mean of every metric over the processes (one collective for all of them); the values as floats.

    Every process must pass the same keys. In a single process the values are returned as they are.
    """
    keys = sorted(metrics)
    if not keys:
        return {}
    values = torch.stack([torch.as_tensor(metrics[k], dtype=torch.float64, device=device).detach().reshape(())
                          for k in keys])
    if is_distributed():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= dist.get_world_size()
    return dict(zip(keys, values.tolist()))


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy ``src``'s buffers (e.g. BatchNorm running statistics) to every process, as DDP does before a forward."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src)
