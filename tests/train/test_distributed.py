"""train/distributed.py: world-size-1 behaviour, and real 2-process gloo DDP training through ``--gpus 2``."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import torch

from engine_helpers import ROOT, TINY, dataset_for, tiny_args
from data.synthetic import SYNTHETIC_SPEC
from train import distributed as dist
from train.checkpoint import load_checkpoint_file


def test_single_process_defaults(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = dist.env_info()
    assert info == dist.DistInfo(0, 1, 0) and info.is_main and not info.distributed
    assert not dist.launched_by_torchrun()
    assert dist.get_rank() == 0 and dist.get_world_size() == 1 and dist.is_main()
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(dist.all_reduce_sum(x), x)
    dist.init_process_group(info, torch.device("cpu"))  # no-op at world size 1
    assert not dist.is_initialized()


def test_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist.launched_by_torchrun()
    assert dist.env_info() == dist.DistInfo(3, 4, 1)
    assert dist.backend_for(torch.device("cpu")) == "gloo" and dist.backend_for(torch.device("cuda", 0)) == "nccl"
    assert 0 < dist.free_port() < 65536


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_two_process_gloo_training(tmp_path):
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
