"""train/distributed.py sync_batchnorm (--sync-bn): converted under DDP on an accelerator, keeping the same
parameters and keys; ignored with one warning line in a single process or on CPU (torch syncs only accelerators)."""
from __future__ import annotations

import torch
import torch.nn as nn
from engine_helpers import TinyNet

from train.distributed import sync_batchnorm


def test_converted_under_ddp_keeping_parameters_and_keys():
    model = TinyNet(3)
    params = list(model.parameters())
    keys = list(model.state_dict())
    converted, ignored = sync_batchnorm(model, distributed=True, device=torch.device("cuda", 0))  # no CUDA needed
    assert ignored == ""
    kinds = [type(m) for m in converted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert kinds == [nn.SyncBatchNorm, nn.SyncBatchNorm]
    assert all(a is b for a, b in zip(converted.parameters(), params))  # the optimiser built before stays valid
    assert list(converted.state_dict()) == keys


def test_ignored_with_one_line_in_a_single_process_and_on_cpu():
    model = TinyNet(3)
    same, why = sync_batchnorm(model, distributed=False, device=torch.device("cuda", 0))
    assert same is model and why.startswith("--sync-bn is ignored: a single process") and "\n" not in why
    same, why = sync_batchnorm(model, distributed=True, device=torch.device("cpu"))
    assert same is model and why.startswith("--sync-bn is ignored on cpu") and "\n" not in why
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
