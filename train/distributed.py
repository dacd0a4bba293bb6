"""Rank-aware helpers that behave the same without a process group (world size 1).

The original wrapped the model in ``DataParallel`` and used ``--gpus`` both as a device list and as a count
(spec bug 31). Here every process owns one device and runs the same code: ``torch.distributed`` with NCCL on
CUDA and gloo on CPU, started either by ``torchrun`` (its ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
``MASTER_*`` environment) or by :func:`spawn`, which starts N local processes itself so that the original
``--gpus 4`` commands keep working.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global ``rank``, ``world_size``, ``local_rank`` (device index on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when the torchrun/torch.distributed.launch environment variables are set."""
    return all(v in os.environ for v in TORCHRUN_VARS)


def env_info() -> DistInfo:
    """Rank, world size and local rank from the environment (defaults: a single process)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``--device``: CUDA (device ``local_rank``) when asked or, with 'auto', when available; else CPU.

    ``cuda`` without a visible GPU is a one-line ``ValueError``.
    """
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is visible; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, and always without a process group."""
    return get_rank() == 0


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """Join the process group described by the environment; a no-op at world size 1."""
    if not info.distributed or is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        raise RuntimeError("MASTER_PORT is not set: launch with torchrun, or with --gpus N (which sets it)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend_for(device), rank=info.rank, world_size=info.world_size, **kwargs)


def destroy_process_group() -> None:
    """Leave the process group if one was joined."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_initialized():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``values`` over all ranks (returned, the input is left untouched)."""
    out = values.clone()
    if is_initialized():
        if dist.get_backend() == "nccl" and out.device.type != "cuda":
            out = out.cuda()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(values.device)


def free_port() -> int:
    """A TCP port that is free on this host right now (for the local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawned(local_rank: int, nprocs: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update({"RANK": str(local_rank), "WORLD_SIZE": str(nprocs), "LOCAL_RANK": str(local_rank),
                       "LOCAL_WORLD_SIZE": str(nprocs), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    fn(*args)


def spawn(fn: Callable[..., Any], nprocs: int, args: tuple = ()) -> None:
    """Run ``fn(*args)`` in ``nprocs`` fresh local processes with a torchrun-like environment.

    Each child sees ``RANK = LOCAL_RANK = i`` and ``WORLD_SIZE = nprocs``; an exception in any child is
    re-raised here (``torch.multiprocessing.spawn`` semantics).
    """
    mp.spawn(_spawned, args=(nprocs, free_port(), fn, args), nprocs=nprocs, join=True)
