"""train/results/checkpoint.py: atomic writes, original names/keys, resolve_start, restore, result CSVs."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from train.engine.lr_scheduler import MultiStep
from train.engine.optim import build_optimizer
from train.results.checkpoint import (
    RESULT_FIELDS,
    ResultsCsv,
    StartPoint,
    atomic_save,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint_file,
    resolve_start,
    restore,
    rng_state,
    save_checkpoint,
)


class Net(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, num_classes)


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full (simulated failure in the middle of a save)")


def _args(pretrained_3d=None, resume_epoch=-1):
    return pretrained_3d, resume_epoch


def test_original_file_name():
    assert checkpoint_path("results/HACS/srtg_r3d_50_gates_False", "srtg_r3d_50", 20) == \
        Path("results/HACS/srtg_r3d_50_gates_False/srtg_r3d_50_ep-0020.pth")


def test_failing_save_leaves_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "net_ep-0001.pth"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"epoch": 2, "w": torch.zeros(3), "bad": Unpicklable()}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_checkpoint_keys_and_unwrapped_state_dict(tmp_path):
    model = nn.DataParallel(Net())  # wrapped like the original: keys would start with 'module.'
    opt = build_optimizer(model.module, 0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    sched = MultiStep(0.1, [2], 0.1)
    path = save_checkpoint(tmp_path / "net_ep-0002.pth", model, 2, opt, scaler, sched, network="net",
                           classes=["a", "b", "c"], config={"output": {"model_dir": tmp_path}},
                           dataset={"name": "X"})
    ckpt = load_checkpoint_file(path)
    assert {"epoch", "state_dict", "optimizer", "scaler", "scheduler", "rng", "network", "num_classes", "classes",
            "config", "dataset"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["num_classes"] == 3 and ckpt["classes"] == ["a", "b", "c"]
    assert set(ckpt["state_dict"]) == set(Net().state_dict())
    assert ckpt["config"]["output"]["model_dir"] == str(tmp_path) and ckpt["dataset"] == {"name": "X"}
    assert ckpt["scheduler"]["steps"] == [2]


def test_resolve_start_order(tmp_path):
    assert resolve_start(*_args(), tmp_path, "net") == StartPoint("scratch", 0)
    assert resolve_start(*_args(resume_epoch=0), tmp_path, "net") == StartPoint("scratch", 0)
    with pytest.raises(FileNotFoundError, match="found epochs \\[1\\]"):
        (tmp_path / "net_ep-0001.pth").write_bytes(b"x")
        resolve_start(*_args(resume_epoch=3), tmp_path, "net")
    assert resolve_start(*_args(resume_epoch=1), tmp_path, "net") == \
        StartPoint("resume", 1, tmp_path / "net_ep-0001.pth")
    other = tmp_path / "elsewhere.pth"
    other.write_bytes(b"x")
    assert resolve_start(*_args(pretrained_3d=str(other)), tmp_path, "net") == StartPoint("pretrained", 0, other)
    # the original README's resume example passes both: resume from that file at the given epoch
    assert resolve_start(*_args(pretrained_3d=str(other), resume_epoch=21), tmp_path, "net") == \
        StartPoint("resume", 21, other)
    with pytest.raises(FileNotFoundError, match="--pretrained_3d"):
        resolve_start(*_args(pretrained_3d=str(tmp_path / "missing.pth")), tmp_path, "net")
    assert list_checkpoints(tmp_path, "net") == [1]


def test_original_checkpoint_with_module_prefix_and_other_classes(tmp_path, caplog):
    source = Net(num_classes=400)
    original = {"epoch": 20, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
                "optimizer": {"state": {}, "param_groups": []}}
    path = tmp_path / "srtg_ep-0020.pth"
    torch.save(original, path)
    target = Net(num_classes=7)
    caplog.set_level("INFO")
    restore(StartPoint("pretrained", 0, path), target)
    assert torch.equal(target.conv.weight, source.conv.weight)
    assert torch.equal(target.bn.running_mean, source.bn.running_mean)
    assert target.fc.weight.shape == (7, 4)
    assert "skipped 2 (shape mismatch)" in caplog.text


def test_resume_restores_every_state(tmp_path):
    torch.manual_seed(0)
    model = Net()
    opt = build_optimizer(model, 0.1)
    model.fc(torch.randn(2, 4)).sum().backward()
    opt.step()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    sched = MultiStep(0.1, [2], 0.1)
    random.seed(5)
    np.random.seed(5)
    path = save_checkpoint(tmp_path / "net_ep-0001.pth", model, 1, opt, scaler, sched, network="net")
    expected_draws = (random.random(), np.random.rand(), torch.rand(1))
    fresh = Net()
    fresh_opt = build_optimizer(fresh, 0.1)
    fresh_scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    fresh_sched = MultiStep(0.1, [2], 0.1)
    random.seed(99)
    restore(StartPoint("resume", 1, path), fresh, fresh_opt, fresh_scaler, fresh_sched)
    assert torch.equal(fresh.fc.weight, model.fc.weight)
    assert fresh_opt.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
    assert fresh_scaler.get_scale() == 1024.0
    assert (random.random(), np.random.rand()) == expected_draws[:2] and torch.equal(torch.rand(1), expected_draws[2])


def test_unreadable_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pth: not a PyTorch checkpoint"):
        load_checkpoint_file(bad)


@pytest.mark.parametrize("content", [b"hello world\n", b"e", b""])
def test_text_file_is_not_a_checkpoint(tmp_path, content):
    bad = tmp_path / "notes.txt"
    bad.write_bytes(content)  # torch.load fails with KeyError / IndexError / EOFError on these
    with pytest.raises(ValueError, match="notes.txt: not a PyTorch checkpoint") as info:
        load_checkpoint_file(bad)
    assert "\n" not in str(info.value)


def test_a_dict_without_weights_is_not_a_checkpoint(tmp_path):
    torch.save({"epoch": 3, "note": "hello"}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="holds no model weights"):
        load_checkpoint_file(tmp_path / "x.pth")


def _saved(tmp_path, classes=("a", "b", "c"), network="net"):
    model = Net(len(classes))
    return save_checkpoint(tmp_path / "net_ep-0001.pth", model, 1, build_optimizer(model, 0.1), network=network,
                           classes=list(classes))


def test_resume_refuses_another_network(tmp_path):
    path = _saved(tmp_path, network="ir_csn_50")
    with pytest.raises(ValueError, match="saved by network 'ir_csn_50', but this run is 'ir_csn_101'"):
        restore(StartPoint("resume", 1, path), Net(), network="ir_csn_101", classes=["a", "b", "c"])


def test_resume_refuses_another_class_order(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(ValueError, match="first at index 0: 'a' vs 'b'"):
        restore(StartPoint("resume", 1, path), Net(), network="net", classes=["b", "a", "c"])
    restore(StartPoint("resume", 1, path), Net(), network="net", classes=["a", "b", "c"])  # same order: fine


class Other(nn.Module):
    """Shares only the classifier's name with :class:`Net`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*[nn.Conv3d(3, 3, 1) for _ in range(12)])
        self.fc = nn.Linear(4, 3)


def test_pretrained_filling_few_tensors(tmp_path, caplog):
    path = _saved(tmp_path)
    with pytest.raises(ValueError, match="filled 2 of the model's 26 tensors \\(8%\\)"):
        restore(StartPoint("pretrained", 0, path), Other())
    caplog.set_level("WARNING")
    restore(StartPoint("pretrained", 0, path), Other(), allow_partial=True)
    assert "most of the model starts from scratch" in caplog.text


def test_rng_state_is_weights_only_loadable(tmp_path):
    atomic_save({"rng": rng_state()}, tmp_path / "r.pth")
    assert "numpy" in torch.load(tmp_path / "r.pth", weights_only=True)["rng"]


def test_results_csv_flushed_every_row(tmp_path):
    csv_file = ResultsCsv(tmp_path / "train_results_s0000.csv")
    csv_file.write({"Epoch": 1, "Top1": 0.5, "Top5": 1.0, "Loss": 1.2, "LR": 0.1, "Samples": 8, "Skipped": 0,
                    "Seconds": 1.5, "NonFinite": 0})
    lines = (tmp_path / "train_results_s0000.csv").read_text().splitlines()  # before close()
    assert lines == [",".join(RESULT_FIELDS), "1,0.5,1.0,1.2,0.1,8,0,1.5,0"]
    csv_file.close()


# --- save failures, retention and auto-resume (train.results.retention) ------------------------------------------

import contextlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from train.results.checkpoint import best_path, last_path, newest_checkpoint  # noqa: E402
from train.results.retention import Checkpoints, CheckpointSaveError, check_writable  # noqa: E402


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, *options: str):
    """A small tmpfs at ``path`` (needs root; the test is skipped otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class _Step:
    def __init__(self, model):
        self.optimizer = build_optimizer(model, 0.1)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.schedule = MultiStep(0.1, [2], 0.1)


class Big(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(100, 100)  # ~40 KB of weights per checkpoint


def test_disk_full_save_is_one_line_and_previous_checkpoint_loads(tmp_path):
    with _tmpfs(tmp_path / "disk", "96k") as disk:
        model = Big()
        keeper = Checkpoints(disk, "net", 0, {"network": "net"})
        keeper.save(model, _Step(model), 1, numbered=True)
        with pytest.raises(CheckpointSaveError) as info:
            keeper.save(model, _Step(model), 2, numbered=True)
        message = str(info.value)
        assert "\n" not in message and str(disk) in message and "MB free" in message
        assert "No space left" in message and "net_ep-0001.pth" in message
        assert load_checkpoint_file(disk / "net_ep-0001.pth")["epoch"] == 1
        assert not [p.name for p in disk.iterdir() if ".tmp-" in p.name]
        assert (disk / "latest").read_text().strip() == "net_ep-0001.pth"


def test_read_only_or_small_folder_refused_before_training(tmp_path):
    with _tmpfs(tmp_path / "ro", "1m", "ro") as ro:
        with pytest.raises(CheckpointSaveError, match="not writable"):
            check_writable(ro, 1000)
    with _tmpfs(tmp_path / "small", "64k") as small:
        with pytest.raises(CheckpointSaveError, match="two checkpoints need about"):
            check_writable(small, 10 * 2**20)


def test_retention_last_best_latest_and_keep(tmp_path):
    model = Net()
    keeper = Checkpoints(tmp_path, "net", 2, {"network": "net"})
    for epoch, top1 in ((1, 0.5), (2, 0.7), (3, 0.6)):
        keeper.save(model, _Step(model), epoch, numbered=True, val_top1=top1)
    keeper.save(model, _Step(model), 3, numbered=False, position={"iteration": 2, "plan_length": 4})
    assert list_checkpoints(tmp_path, "net") == [2, 3]  # --keep-checkpoints 2
    assert load_checkpoint_file(best_path(tmp_path, "net"))["epoch"] == 2  # best val top-1 0.7
    assert load_checkpoint_file(best_path(tmp_path, "net"))["metrics"]["best_val_top1"] == 0.7
    assert (tmp_path / "latest").read_text().strip() == "net_last.pth"
    path, epoch, iteration = newest_checkpoint(tmp_path, "net")
    assert (path, epoch, iteration) == (last_path(tmp_path, "net"), 3, 2)
    start = resolve_start(None, "auto", tmp_path, "net")
    assert start == StartPoint("resume", 3, last_path(tmp_path, "net"), 2)
    assert resolve_start(None, "auto", tmp_path / "empty", "net") == StartPoint("scratch", 0)


def test_auto_skips_a_damaged_newest_file(tmp_path, caplog):
    model = Net()
    keeper = Checkpoints(tmp_path, "net", 0, {"network": "net"})
    keeper.save(model, _Step(model), 1, numbered=True)
    keeper.save(model, _Step(model), 2, numbered=True)
    last_path(tmp_path, "net").unlink()
    (tmp_path / "net_ep-0002.pth").write_bytes(b"damaged")
    assert newest_checkpoint(tmp_path, "net")[:2] == (tmp_path / "net_ep-0001.pth", 1)
    assert "not a PyTorch checkpoint" in caplog.text


@pytest.mark.slow
def test_disk_full_during_training_stops_with_one_line(tmp_path):
    from engine_helpers import ROOT, TINY, dataset_for, tiny_args

    from data.prep.synthetic import SYNTHETIC_SPEC

    log_file = tmp_path / "train.log"  # on another disk, so the error line can be written
    with _tmpfs(tmp_path / "disk", "280k") as disk:
        args = tiny_args(dataset_for(SYNTHETIC_SPEC), disk, "--end-epoch", "8", "--save-frequency", "1",
                         "--log-file", str(log_file))
        result = subprocess.run([sys.executable, str(ROOT / "tests" / "train" / "ddp_main.py"), *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1, result.stderr[-2000:]
        errors = [ln for ln in result.stderr.splitlines() if "ERROR" in ln or "Traceback" in ln]
        assert len(errors) == 1 and "No space left" in errors[0] and "MB free" in errors[0], result.stderr[-2000:]
        assert errors[0].split("ERROR ", 1)[1] in log_file.read_text()
        folder = disk / f"{TINY}_gates_False"
        kept = (folder / "latest").read_text().strip()
        assert load_checkpoint_file(folder / kept)["epoch"] >= 1


def test_the_free_space_estimate_covers_an_adamw_and_ema_checkpoint(tmp_path):
    """The start-up check asks for room for two checkpoints: with AdamW's two moments and the EMA copy a
    checkpoint is about twice an SGD one, which the estimate of one momentum buffer left out."""
    from train.engine.ema import ModelEma
    from train.results.retention import estimate_bytes

    model = nn.Sequential(nn.Linear(256, 256), nn.BatchNorm1d(256), nn.Linear(256, 10))
    opt = build_optimizer(model, 0.1, name="adamw")
    model(torch.randn(4, 256)).sum().backward()
    opt.step()
    ema = ModelEma(model, 0.9)
    path = save_checkpoint(tmp_path / "c.pth", model, 1, opt, network="net", ema_state=ema.state_dict())
    assert path.stat().st_size <= estimate_bytes(model, 2, ema=True)
    sgd = save_checkpoint(tmp_path / "s.pth", model, 1, build_optimizer(model, 0.1), network="net")
    assert sgd.stat().st_size <= estimate_bytes(model) < path.stat().st_size


def test_auto_reads_only_the_newest_checkpoints(tmp_path, monkeypatch):
    """``--resume-epoch auto`` in a folder of many epochs reads the newest files, not every ``_ep-XXXX.pth``."""
    from train.results import checkpoint
    from train.results.checkpoint import newest_checkpoint

    model = Net()
    for epoch in range(1, 6):
        save_checkpoint(checkpoint_path(tmp_path, "net", epoch), model, epoch, network="net")
    save_checkpoint(tmp_path / "net_last.pth", model, 5, network="net", position={"iteration": 2})
    (tmp_path / "net_ep-0005.pth").write_bytes(b"damaged")
    read, load = [], checkpoint.load_checkpoint_file
    monkeypatch.setattr(checkpoint, "load_checkpoint_file", lambda path: (read.append(Path(path).name), load(path))[1])
    assert newest_checkpoint(tmp_path, "net") == (tmp_path / "net_last.pth", 5, 2)
    assert read == ["net_last.pth"]
    (tmp_path / "net_last.pth").unlink()
    read.clear()
    assert newest_checkpoint(tmp_path, "net") == (checkpoint_path(tmp_path, "net", 4), 4, 0)
    assert read == ["net_ep-0005.pth", "net_ep-0004.pth"]  # the damaged newest is skipped, then one more is read
