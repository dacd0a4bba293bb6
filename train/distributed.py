"""Rank-aware helpers that behave the same without a process group (world size 1).

Every process owns one device (docs/differences.md#4, #31) and runs the same code: ``torch.distributed`` with NCCL on
CUDA and gloo on CPU, started by ``torchrun`` (its ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*`` environment), by
``srun`` alone (``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``; master = first host of
``SLURM_NODELIST``, port from ``SLURM_JOB_ID``) or by :func:`spawn`, which starts N local processes itself so
that the original ``--gpus 4`` commands keep working. Collectives time out after ``--dist-timeout`` seconds,
so a hung or dead rank stops the others with one line (:class:`CollectiveTimeout`).
"""
from __future__ import annotations

import datetime
import os
import re
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SRUN_VARS = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID")
PORT_BASE = 20000  # srun rendezvous port: PORT_BASE + SLURM_JOB_ID % 20000


class CollectiveTimeout(RuntimeError):
    """A collective did not complete within ``--dist-timeout``: another rank hung or died."""


class RankExited(RuntimeError):
    """A spawned rank was killed by a signal or exited without an exception (out of memory, a kill): one line."""


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


def launched_by_srun() -> bool:
    """True inside an ``srun`` step of more than one task (and not under torchrun). A batch script's own
    shell has no ``SLURM_STEP_ID``, so ``sbatch --ntasks 4`` alone does not count as 4 ranks."""
    return (not launched_by_torchrun() and all(v in os.environ for v in SRUN_VARS)
            and int(os.environ["SLURM_NTASKS"]) > 1)


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[03-05,07],cpu1`` -> ``gpu03``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ValueError(f"SLURM_NODELIST '{nodelist}': cannot read the first host name")
    prefix, ranges = match.groups()
    return prefix + (re.split(r"[-,]", ranges)[0] if ranges else "")


def env_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's or srun's environment (defaults: a single process)."""
    if launched_by_srun():
        return DistInfo(int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"]),
                        int(os.environ.get("SLURM_LOCALID", 0)))
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


def init_process_group(info: DistInfo, device: torch.device, timeout_s: float = 300.0) -> None:
    """Join the process group described by the environment (collective timeout ``timeout_s``); a no-op at
    world size 1."""
    if not info.distributed or is_initialized():
        return
    if launched_by_srun():
        os.environ.setdefault("MASTER_ADDR", first_host(os.environ.get("SLURM_NODELIST", "127.0.0.1")))
        os.environ.setdefault("MASTER_PORT", str(PORT_BASE + int(os.environ.get("SLURM_JOB_ID", 0)) % 20000))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        raise RuntimeError("MASTER_PORT is not set: launch with torchrun or srun, or with --gpus N (which sets it)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend_for(device), rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(seconds=float(timeout_s)), **kwargs)


def as_timeout(exc: BaseException, info: DistInfo, timeout_s: float) -> CollectiveTimeout | None:
    """``exc`` (raised by a collective) as a one-line :class:`CollectiveTimeout`, or None if it is another error."""
    text = str(exc)
    if not is_initialized() or not re.search(r"[Tt]imed out|[Tt]imeout|Connection (reset|closed)|peer", text):
        return None
    others = [r for r in range(info.world_size) if r != info.rank]
    peer = re.search(r"rank[ :]*(\d+)", text)
    named = f"rank {peer.group(1)}" if peer and int(peer.group(1)) != info.rank else (
        f"rank {others[0]}" if len(others) == 1 else f"one of ranks {others}")
    return CollectiveTimeout(f"rank {info.rank}: no answer from {named} within --dist-timeout {timeout_s:g} s "
                             f"(it hung or died: {text.splitlines()[0][:160]}); stopping; resume with "
                             "--resume-epoch auto")


def agree(flag: bool) -> bool:
    """True if ``flag`` is True on every rank (``flag`` itself without a process group)."""
    if not is_initialized():
        return bool(flag)
    return bool(all_reduce_sum(torch.tensor([0.0 if flag else 1.0]))[0] == 0)


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


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Every rank's buffers of ``module`` (BatchNorm's running statistics) become rank 0's, in place (no-op without
    a process group). DDP sends rank 0's buffers at the start of each training forward, and each rank's forward
    then updates its own from its own batch: after an epoch the ranks hold different statistics."""
    if is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


SYNC_BN_DEVICES = ("cuda", "hpu", "xpu")  # where torch's SyncBatchNorm can share batch statistics


def sync_batchnorm(model: torch.nn.Module, distributed: bool, device: torch.device) -> tuple[torch.nn.Module, str]:
    """``--sync-bn``: every BatchNorm of ``model`` becomes a ``SyncBatchNorm`` (statistics over all processes'
    batches) when the run is distributed on a device torch syncs. Returns the model and, when the flag is
    ignored (a single process, or CPU: torch's SyncBatchNorm syncs only accelerator tensors), the one-line
    warning saying why ('' when converted).

    The converted layers keep the same ``Parameter`` and buffer objects, so an optimiser built before keeps
    training them, and the state_dict keys do not change.
    """
    if not distributed:
        return model, "--sync-bn is ignored: a single process has no other batches to share BatchNorm statistics with"
    if device.type not in SYNC_BN_DEVICES:
        return model, (f"--sync-bn is ignored on {device.type}: torch's SyncBatchNorm syncs only "
                       f"{'/'.join(SYNC_BN_DEVICES)} tensors; each process normalises with its own batch")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model), ""


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
    re-raised here (``torch.multiprocessing.spawn`` semantics); a child killed by a signal (SIGKILL of the
    out-of-memory killer) or exiting with a code is a one-line :class:`RankExited`. SIGTERM and SIGUSR1 received
    here are passed on to the children (SIGINT from a terminal reaches them directly).
    """
    context = mp.spawn(_spawned, args=(nprocs, free_port(), fn, args), nprocs=nprocs, join=False)

    def forward(signum: int, frame: Any) -> None:  # SIGTERM/SIGUSR1 sent to this process reach every rank
        for process in context.processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        # a failed rank makes the others stop: SIGTERM, then SIGKILL after 5 s (a stopped rank ignores SIGTERM)
        while not context.join(grace_period=5.0):
            pass
    except mp.ProcessExitedException as exc:
        how = f"was killed by {exc.signal_name}" if exc.signal_name else f"exited with code {exc.exit_code}"
        raise RankExited(f"rank {exc.error_index} (pid {exc.error_pid}) {how}; the other ranks were stopped; continue "
                         "from the newest checkpoint with --resume-epoch auto") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
