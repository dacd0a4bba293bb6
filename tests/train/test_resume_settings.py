"""Where a resume starts and with what: this command line's optimiser settings (as the warning says) over the
checkpoint's per-parameter state, a changed ``--fine-tune`` named in the warning, ``--pretrained_3d F
--resume-epoch auto`` continuing its own folder, and ``--pretrained_3d <mid-epoch file> --resume-epoch N``
continuing at the file's step, and a resumed run's best top-1 counting the epochs before the resume."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from data.catalog.datasets import get_dataset
from train.config import changed_fields
from train.engine.cli import parse_config
from train.engine.optim import build_optimizer
from train.results.checkpoint import StartPoint, restore, save_checkpoint


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3, 4)))


def _trained_checkpoint(path, **optimiser):
    torch.manual_seed(0)
    model = Net()
    opt = build_optimizer(model, 0.1, **optimiser)
    model(torch.randn(2, 3, 1, 2, 2)).sum().backward()
    opt.step()
    return save_checkpoint(path, model, 1, opt, network="net"), opt


def test_a_resume_uses_this_command_lines_decay_momentum_and_fine_tune_multipliers(tmp_path):
    path, saved = _trained_checkpoint(tmp_path / "net_ep-0001.pth", weight_decay=1e-4, momentum=0.9)
    model = Net()
    opt = build_optimizer(model, 0.1, fine_tune=True, weight_decay=0.05, momentum=0.5)
    restore(StartPoint("resume", 1, path), model, opt)
    assert {(g["name"], g["weight_decay"], g["momentum"], g["lr_mult"]) for g in opt.param_groups} == \
        {("base", 0.05, 0.5, 0.6), ("new", 0.05, 0.5, 1.0)}
    for p in model.parameters():  # the momentum buffers are the checkpoint's
        kept = saved.state[next(q for q in saved.param_groups[0]["params"] + saved.param_groups[1]["params"]
                                if q.shape == p.shape)]["momentum_buffer"]
        assert torch.equal(opt.state[p]["momentum_buffer"], kept)


def test_adamw_resume_keeps_the_moments_and_takes_the_new_betas(tmp_path):
    path, saved = _trained_checkpoint(tmp_path / "net_ep-0001.pth", name="adamw", momentum=0.9)
    model = Net()
    opt = build_optimizer(model, 0.1, name="adamw", momentum=0.8, weight_decay=0.05)
    restore(StartPoint("resume", 1, path), model, opt)
    assert {(g["betas"][0], g["weight_decay"]) for g in opt.param_groups} == {(0.8, 0.05)}
    assert all(float(s["step"]) == 1.0 and s["exp_avg"].abs().sum() > 0 for s in opt.state.values())


def test_a_changed_fine_tune_is_named_on_resume():
    hacs = get_dataset("hacs")
    saved, now = parse_config(hacs, []), parse_config(hacs, ["--fine-tune", "True"])
    assert changed_fields(saved, now) == ["--fine-tune True (was False)"]


@pytest.mark.slow
def test_a_requeued_fine_tuning_run_with_auto_continues_its_own_checkpoints(tmp_path):
    """``--pretrained_3d F --resume-epoch auto`` (the requeue recipe of a fine-tuning job): the first run starts
    from F, the requeued one continues the folder's newest checkpoint instead of refusing the folder."""
    from engine_helpers import TINY, dataset_for, tiny_args, tiny_network

    from data.prep.synthetic import SYNTHETIC_SPEC
    from train.engine.run import main
    from train.results.checkpoint import load_checkpoint_file

    def train(model_dir, *extra):
        with tiny_network():
            return main(SYNTHETIC_SPEC, tiny_args(dataset_for(SYNTHETIC_SPEC), model_dir, *extra))

    assert train(tmp_path / "source", "--end-epoch", "1") == 0
    weights = tmp_path / "source" / f"{TINY}_gates_False" / f"{TINY}_ep-0001.pth"
    job = ["--pretrained_3d", str(weights), "--resume-epoch", "auto"]
    assert train(tmp_path / "tuned", *job, "--end-epoch", "1") == 0
    out = tmp_path / "tuned" / f"{TINY}_gates_False"
    assert "Initialised from" in (out / "train.log").read_text()
    assert train(tmp_path / "tuned", *job, "--end-epoch", "2") == 0
    assert load_checkpoint_file(out / f"{TINY}_ep-0002.pth")["epoch"] == 2
    assert f"from `{out / f'{TINY}_ep-0001.pth'}' at epoch 1" in (out / "train.log").read_text().split(
        "Start training")[-1]
    assert (out / "train_results_s0001.csv").is_file() and not list(out.glob("previous-*"))


def test_pretrained_with_resume_epoch_continues_a_mid_epoch_file_at_its_step(tmp_path):
    """``--pretrained_3d <net>_last.pth --resume-epoch N`` on a file saved after step 3 of epoch N + 1 continues
    at step 3 (restarting the epoch would train its first 3 batches twice); another N starts at the epoch."""
    from train.results.checkpoint import resolve_start

    model = Net()
    last = save_checkpoint(tmp_path / "net_last.pth", model, 1, network="net",
                           position={"iteration": 3, "plan_length": 10, "sampler_epoch": 1})
    assert resolve_start(str(last), 1, tmp_path, "net") == StartPoint("resume", 1, last, 3)
    assert resolve_start(str(last), 2, tmp_path, "net") == StartPoint("resume", 2, last, 0)
    end = save_checkpoint(tmp_path / "net_ep-0001.pth", model, 1, network="net")
    assert resolve_start(str(end), 1, tmp_path, "net") == StartPoint("resume", 1, end, 0)


def test_a_resumed_runs_best_top1_counts_the_epochs_before_the_resume(tmp_path, monkeypatch):
    """The summary's (and the closing log line's) best validation top-1 of a resumed run is the run's best, which
    may come from an epoch before the resume: here the resumed epoch's validation is NaN (never best)."""
    import csv

    from engine_helpers import TINY, TinyNet, dataset_for, tiny_args, tiny_network

    from data.prep.synthetic import SYNTHETIC_SPEC
    from train.engine.run import run

    args = tiny_args(dataset_for(SYNTHETIC_SPEC), tmp_path)
    with tiny_network():
        run(SYNTHETIC_SPEC, [*args, "--end-epoch", "1"])
        with open(tmp_path / f"{TINY}_gates_False" / "val_results_s0000.csv", newline="") as fh:
            first = float(next(csv.DictReader(fh))["Top1"])
        forward = TinyNet.forward
        monkeypatch.setattr(TinyNet, "forward", lambda self, x: forward(self, x) if self.training else
                            torch.full((x.shape[0], self.fc.out_features), float("nan")))
        summary = run(SYNTHETIC_SPEC, [*args, "--end-epoch", "2", "--resume-epoch", "auto"])
    assert summary["last_val_top1"] != summary["last_val_top1"]  # NaN: the resumed epoch is invalid
    assert summary["best_val_top1"] == first
