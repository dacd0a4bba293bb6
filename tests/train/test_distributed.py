"""train/distributed.py: every helper at world size 1, a real 2-process gloo group through ``spawn``, and real
2-process DDP training through ``--gpus 2``."""
from __future__ import annotations

import contextlib
import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from train import distributed as dist


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)


def test_every_helper_at_world_size_1(single_process: None) -> None:
    info = dist.env_info()
    assert info == dist.DistInfo(0, 1, 0) and info.is_main and not info.distributed
    assert not dist.launched_by_torchrun()
    dist.init_process_group(info, torch.device("cpu"))  # a no-op: no MASTER_PORT needed, no group joined
    assert not dist.is_initialized()
    assert dist.get_rank() == 0 and dist.get_world_size() == 1 and dist.is_main()
    dist.barrier()
    x = torch.tensor([1.0, 2.0])
    total = dist.all_reduce_sum(x)
    assert torch.equal(total, x) and total is not x
    total += 1  # the result is a copy: the caller's tensor is left alone
    assert torch.equal(x, torch.tensor([1.0, 2.0]))
    dist.destroy_process_group()
    assert not dist.is_initialized()


def test_multi_process_info_without_a_port_is_a_one_line_error(single_process: None) -> None:
    with pytest.raises(RuntimeError,
                       match="MASTER_PORT is not set: launch with torchrun or srun, or with --gpus N") as err:
        dist.init_process_group(dist.DistInfo(0, 2, 0), torch.device("cpu"))
    assert "\n" not in str(err.value) and not dist.is_initialized()


def test_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert not dist.launched_by_torchrun()  # all three variables or it is not torchrun
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist.launched_by_torchrun()
    info = dist.env_info()
    assert info == dist.DistInfo(3, 4, 1) and not info.is_main and info.distributed
    assert dist.backend_for(torch.device("cpu")) == "gloo" and dist.backend_for(torch.device("cuda", 0)) == "nccl"


def test_pick_device_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist.pick_device("auto") == dist.pick_device("cpu", local_rank=1) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^--device cuda: no CUDA device is visible; use --device cpu or auto$"):
        dist.pick_device("cuda")


def test_pick_device_spreads_ranks_over_the_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [dist.pick_device("auto", r) for r in range(3)] == [torch.device("cuda", i) for i in (0, 1, 0)]
    assert dist.pick_device("cpu", 1) == torch.device("cpu")


def test_free_port_can_be_bound() -> None:
    port = dist.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))  # raises OSError if the port were taken


def _group_worker(out_dir: str) -> None:
    """Runs in each spawned rank: join the gloo group, reduce, write what every helper said."""
    info = dist.env_info()
    dist.init_process_group(info, torch.device("cpu"))
    try:
        values = torch.tensor([info.rank + 1.0, 10.0 * (info.rank + 1)])
        counts = torch.tensor([info.rank + 1], dtype=torch.int64)
        total, count = dist.all_reduce_sum(values), dist.all_reduce_sum(counts)
        dist.barrier()
        result = {"info": [info.rank, info.world_size, info.local_rank], "torchrun": dist.launched_by_torchrun(),
                  "initialized": dist.is_initialized(), "rank": dist.get_rank(), "world": dist.get_world_size(),
                  "main": dist.is_main(), "backend": torch.distributed.get_backend(), "total": total.tolist(),
                  "count": count.tolist(), "count_dtype": str(count.dtype), "input": values.tolist()}
    finally:
        dist.destroy_process_group()
    result["after_destroy"] = dist.is_initialized()
    Path(out_dir, f"rank{info.rank}.json").write_text(json.dumps(result))


def _failing_worker() -> None:
    if dist.env_info().rank == 1:
        raise ValueError("rank 1 fails on purpose")


@pytest.mark.slow
def test_spawn_runs_a_two_process_gloo_group(tmp_path: Path) -> None:
    dist.spawn(_group_worker, nprocs=2, args=(str(tmp_path),))
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, res in enumerate(results):
        assert res["info"] == [rank, 2, rank] and res["torchrun"] and res["initialized"]
        assert res["rank"] == rank and res["world"] == 2 and res["main"] is (rank == 0)
        assert res["backend"] == "gloo" and not res["after_destroy"]
        assert res["total"] == [3.0, 30.0] and res["count"] == [3] and res["count_dtype"] == "torch.int64"
        assert res["input"] == [rank + 1.0, 10.0 * (rank + 1)]  # not reduced in place


@pytest.mark.slow
def test_spawn_reraises_a_child_exception() -> None:
    with pytest.raises(mp.ProcessRaisedException, match="rank 1 fails on purpose"):
        dist.spawn(_failing_worker, nprocs=2)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path: Path) -> None:
    from engine_helpers import ROOT, TINY, dataset_for, tiny_args

    from data.prep.synthetic import SYNTHETIC_SPEC
    from train.results.checkpoint import load_checkpoint_file

    args = tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "1", "--gpus", "2", "--batch-size", "4")
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("ddp_main.py")), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / f"{TINY}_gates_False"
    log_text = (out / "train.log").read_text()
    assert "2 process(es)" in log_text and "batch_size = (    4," in log_text  # global batch: 2 per rank × 2
    train_rows, val_rows = _rows(out / "train_results_s0000.csv"), _rows(out / "val_results_s0000.csv")
    assert int(train_rows[0]["Samples"]) == 8 and int(val_rows[0]["Samples"]) == 4  # summed over both ranks
    assert len(log_text.split("Epoch [1]  (train)")) == 2  # rank 0 alone writes the log
    ckpt = load_checkpoint_file(out / f"{TINY}_ep-0001.pth")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])


def test_srun_environment_without_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NODELIST", "gpu[03-05,07],cpu1")
    monkeypatch.setenv("SLURM_JOB_ID", "123456")
    assert not dist.launched_by_srun()  # a batch script's shell (no step id) is not 8 ranks
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert dist.launched_by_srun() and dist.env_info() == dist.DistInfo(5, 8, 1)
    assert dist.first_host("gpu[03-05,07],cpu1") == "gpu03" and dist.first_host("node7") == "node7"
    calls = {}
    monkeypatch.setattr(dist.dist, "init_process_group", lambda backend, **kw: calls.update(backend=backend, **kw))
    dist.init_process_group(dist.env_info(), torch.device("cpu"), timeout_s=42)
    assert calls["rank"] == 5 and calls["world_size"] == 8 and calls["timeout"].total_seconds() == 42
    import os  # noqa: PLC0415
    assert os.environ["MASTER_ADDR"] == "gpu03" and os.environ["MASTER_PORT"] == str(20000 + 123456 % 20000)
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task: a single process (it may still spawn --gpus N)
    assert not dist.launched_by_srun()


@pytest.mark.slow
def test_stopped_rank_makes_the_other_exit_within_the_timeout(tmp_path):
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    from engine_helpers import dataset_for, start_child, tiny_args, wait_for  # noqa: PLC0415

    from data.prep.synthetic import SYNTHETIC_SPEC  # noqa: PLC0415

    marks = tmp_path / "marks"
    marks.mkdir()
    timeout = 8
    args = tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "3", "--gpus", "2", "--batch-size", "4",
                     "--dist-timeout", str(timeout))
    proc = start_child(args, {"TEST_MARK_DIR": str(marks), "TEST_MARK_AT": "0:0", "TEST_STEP_SLEEP": "0.05"})
    wait_for(marks / "rank1", proc, timeout=200)
    stopped = int((marks / "rank1").read_text())
    os.kill(stopped, signal.SIGSTOP)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=timeout + 60)
        took = time.monotonic() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stopped, signal.SIGKILL)
        proc.kill()
    assert proc.returncode not in (0, None)
    named = [ln for ln in err.splitlines() if "no answer from rank 1" in ln]
    assert named and f"--dist-timeout {timeout} s" in named[0], err[-3000:]
    print(f"stopped rank: the other exited {took:.1f} s after SIGSTOP (timeout {timeout} s)")


@pytest.mark.slow
def test_a_sigkilled_rank_stops_the_run_in_one_line_with_a_resumable_checkpoint(tmp_path):
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from engine_helpers import TINY, dataset_for, start_child, tiny_args, wait_for  # noqa: PLC0415

    from data.prep.synthetic import SYNTHETIC_SPEC  # noqa: PLC0415
    from train.results.checkpoint import load_checkpoint_file  # noqa: PLC0415

    marks = tmp_path / "marks"
    marks.mkdir()
    args = tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "3", "--gpus", "2", "--batch-size", "4",
                     "--dist-timeout", "20", "--save-frequency", "1")
    proc = start_child(args, {"TEST_MARK_DIR": str(marks), "TEST_MARK_AT": "1:1", "TEST_STEP_SLEEP": "0.05"})
    wait_for(marks / "rank1", proc, timeout=200)
    os.kill(int((marks / "rank1").read_text()), signal.SIGKILL)  # what the out-of-memory killer sends
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    said = [ln for ln in err.splitlines() if "was killed by SIGKILL" in ln]
    assert len(said) == 1 and said[0].startswith("error: rank 1 (pid ") and "--resume-epoch auto" in said[0]
    ckpt = load_checkpoint_file(tmp_path / f"{TINY}_gates_False" / f"{TINY}_ep-0001.pth")
    assert ckpt["epoch"] == 1  # the newest complete state, for --resume-epoch auto
