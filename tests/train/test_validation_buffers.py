"""Under DDP every rank validates rank 0's model: the BatchNorm statistics that each rank's last training forward
left apart are made rank 0's (those of its checkpoint) before validation, for the model and its EMA."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from engine_helpers import TINY, TinyNet, dataset_for, tiny_args, tiny_network

from data.prep.synthetic import SYNTHETIC_SPEC
from train import distributed as dist
from train.engine.run import run


def _buffers_worker(out_dir: str) -> None:
    info = dist.env_info()
    dist.init_process_group(info, torch.device("cpu"))
    try:
        bn = nn.BatchNorm1d(2)
        bn.running_mean.fill_(info.rank + 1.0)
        bn.num_batches_tracked.fill_(10 * (info.rank + 1))
        dist.broadcast_buffers(bn)
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"rank{info.rank}.json").write_text(json.dumps(
        {"mean": bn.running_mean.tolist(), "tracked": int(bn.num_batches_tracked)}))


@pytest.mark.slow
def test_two_ranks_hold_rank_0s_buffers_after_the_broadcast(tmp_path):
    dist.spawn(_buffers_worker, nprocs=2, args=(str(tmp_path),))
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {"mean": [1.0, 1.0], "tracked": 10}


def test_validation_first_makes_the_model_and_its_average_rank_0s(tmp_path, monkeypatch):
    events = []
    broadcast = dist.broadcast_buffers
    monkeypatch.setattr(dist, "broadcast_buffers", lambda m: (events.append(("sync", type(m).__name__, id(m))),
                                                              broadcast(m))[1])
    forward = TinyNet.forward

    def watched(self, x):
        if not self.training:
            events.append(("validate", type(self).__name__, id(self)))
        return forward(self, x)

    monkeypatch.setattr(TinyNet, "forward", watched)
    with tiny_network():
        run(SYNTHETIC_SPEC, tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path, "--end-epoch", "1",
                                      "--ema-decay", "0.5"))
    synced = [e[2] for e in events if e[0] == "sync"]
    validated = [e[2] for e in events if e[0] == "validate"]
    assert len(set(synced)) == 2 and set(validated) == set(synced)  # the model and the EMA copy
    assert events[0][0] == "sync" and events[1][0] == "sync"  # both before the first validation forward
    assert (tmp_path / f"{TINY}_gates_False" / "val_results_s0000.csv").is_file()
