"""The seven train_*.py scripts end to end on tiny data: --help, one epoch, resume, fine-tune, determinism."""
from __future__ import annotations

import csv
import re
import runpy
import sys

import pytest
import torch
from engine_helpers import ROOT, SCRIPTS, dataset_for, load_script, tiny_args, tiny_network

from train.config import FIELD_GROUP
from train.results.checkpoint import load_checkpoint_file


@pytest.fixture(scope="module")
def tiny():
    with tiny_network() as name:
        yield name


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_lists_every_argument(name, capsys):
    module = load_script(name)
    with pytest.raises(SystemExit) as exit_info:
        module.main(module.SPEC, ["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for dest in FIELD_GROUP:
        if dest == "variant" and name != "train_kinetics":
            continue
        assert "--" + dest.replace("_", "-") in text or "--" + dest in text, dest
    for alias in ("--pretrained_3d", "--pretrained-3d", "--train-frame-inteval", "--val-frame-inteval"):
        assert alias in text
    assert ("--variant" in text) == (name == "train_kinetics")


# a few more options exercised on the way
EXTRA = {"train_mit": ["--tensorboard", "True"], "train_hmdb51": ["--gates", "False", "--precision", "fp32"]}


@pytest.mark.parametrize("name", SCRIPTS)
def test_one_tiny_epoch(name, tiny, tmp_path):
    module = load_script(name)
    dataset = dataset_for(module.SPEC)
    assert module.main(module.SPEC, tiny_args(dataset, tmp_path, "--end-epoch", "1", *EXTRA.get(name, []))) == 0
    spec_name = module.SPEC.with_variant(700).name if module.SPEC.variants else module.SPEC.name
    out = tmp_path / f"{tiny}_gates_False"
    ckpt = load_checkpoint_file(out / f"{tiny}_ep-0001.pth")
    assert ckpt["epoch"] == 1 and ckpt["network"] == tiny
    # the tiny CSVs name 4 classes: the classifier has 4 outputs, and a data set published with more says so
    assert ckpt["num_classes"] == 4 and ckpt["state_dict"]["fc.weight"].shape[0] == 4
    assert len(ckpt["classes"]) == 4 and ckpt["dataset"]["name"] == spec_name
    assert ckpt["config"]["model"]["network"] == tiny
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    train_rows, val_rows = _rows(out / "train_results_s0000.csv"), _rows(out / "val_results_s0000.csv")
    assert [r["Epoch"] for r in train_rows] == ["1"] and [r["Epoch"] for r in val_rows] == ["1"]
    assert int(train_rows[0]["Samples"]) == 8 and int(val_rows[0]["Samples"]) == 4
    assert (out / "curves.png").stat().st_size > 0
    log_text = (out / "train.log").read_text()
    assert "Speed (r=" in log_text and "\033[" not in log_text and spec_name in log_text
    fewer = f"the label files name 4 classes, fewer than {spec_name}'s"
    assert (fewer in log_text) == (module.SPEC.num_classes > 4)
    if name == "train_mit":
        assert any((out / "tensorboard").glob("events.out.tfevents.*"))


def _weights(path):
    return load_checkpoint_file(path)["state_dict"]


@pytest.mark.slow
def test_resume_matches_straight_run(tiny, tmp_path):
    module = load_script("train_synthetic")
    dataset = dataset_for(module.SPEC)
    straight, split = tmp_path / "straight", tmp_path / "split"
    random_crops = ["--train-frame-interval", "1", "--clip-length", "3"]  # 8-frame videos: random start frames
    assert module.main(module.SPEC, tiny_args(dataset, straight, "--end-epoch", "2", *random_crops)) == 0
    assert module.main(module.SPEC, tiny_args(dataset, split, "--end-epoch", "1", *random_crops)) == 0
    assert module.main(module.SPEC, tiny_args(dataset, split, "--end-epoch", "2", "--resume-epoch", "1",
                                              *random_crops)) == 0
    out = f"{tiny}_gates_False/{tiny}_ep-0002.pth"
    a, b = _weights(straight / out), _weights(split / out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    resumed = _rows(split / f"{tiny}_gates_False" / "train_results_s0001.csv")
    second = _rows(straight / f"{tiny}_gates_False" / "train_results_s0000.csv")[1]
    assert [r["Epoch"] for r in resumed] == ["2"]
    same = ("Top1", "Top5", "Loss", "LR", "Samples")
    assert {k: resumed[0][k] for k in same} == {k: second[k] for k in same}


def test_clip_warmup_trains_its_epochs_on_longer_clips(tiny, tmp_path):
    module = load_script("train_synthetic")
    argv = tiny_args(dataset_for(module.SPEC), tmp_path, "--end-epoch", "2", "--clip-length", "3",
                     "--clip-warmup-epochs", "1", "--clip-warmup-length", "6", "--clip-warmup-size", "24")
    assert module.main(module.SPEC, argv) == 0
    log_text = (tmp_path / f"{tiny}_gates_False" / "train.log").read_text()
    frames = {}  # epoch -> the T of its logged training batches
    for epoch, t in re.findall(r"Epoch \[(\d+)\]\s+Batch.*?batch_size = \(\s*\d+,\s*3,\s*(\d+),", log_text):
        frames.setdefault(int(epoch), set()).add(int(t))
    assert frames == {1: {6}, 2: {3}}
    assert "T=6, S=24) (clip-length warm-up until epoch 1)" in log_text
    assert "Epoch [2]: plan 4x(B=2, T=3, S=32)" in log_text
    assert "Epoch [1]: no validation in the clip-length warm-up" in log_text  # chance level at the shorter clip
    val_rows = _rows(tmp_path / f"{tiny}_gates_False" / "val_results_s0000.csv")
    assert [r["Epoch"] for r in val_rows] == ["2"]


def test_fine_tune_from_checkpoint_with_other_class_count(tiny, tmp_path):
    synthetic = load_script("train_synthetic")  # 8 classes
    assert synthetic.main(synthetic.SPEC, tiny_args(dataset_for(synthetic.SPEC), tmp_path / "pre",
                                                    "--end-epoch", "1")) == 0
    pretrained = tmp_path / "pre" / f"{tiny}_gates_False" / f"{tiny}_ep-0001.pth"
    hmdb = load_script("train_hmdb51")
    full = dataset_for(hmdb.SPEC).parents[1]  # <root> of the 4-class layout; keep 3 classes of its CSVs
    root = tmp_path / "three"
    (root / "labels").mkdir(parents=True)
    (root / "data").symlink_to(full / "data")
    for csv_name in (hmdb.SPEC.train_csv, hmdb.SPEC.val_csv):
        lines = (full / "labels" / csv_name).read_text().splitlines()
        keep = sorted({line.split(",")[0] for line in lines[1:]})[:3]
        (root / "labels" / csv_name).write_text("\n".join([lines[0]] + [ln for ln in lines[1:]
                                                                       if ln.split(",")[0] in keep]) + "\n")
    # 3 classes: fc does not match the 4-class checkpoint, everything else does
    args = tiny_args(root / "data" / hmdb.SPEC.folder, tmp_path / "ft", "--end-epoch", "1", "--pretrained-3d",
                     str(pretrained), "--fine-tune", "True")
    assert hmdb.main(hmdb.SPEC, args) == 0
    out = tmp_path / "ft" / f"{tiny}_gates_False"
    log_text = (out / "train.log").read_text()
    assert "skipped 2 (shape mismatch)" in log_text and "lr x0.6" in log_text
    assert load_checkpoint_file(out / f"{tiny}_ep-0001.pth")["num_classes"] == 3


def test_missing_dataset_is_one_line_error(tiny, tmp_path, capsys):
    module = load_script("train_ucf101")
    assert module.main(module.SPEC, tiny_args(tmp_path / "nowhere", tmp_path, "--end-epoch", "1")) == 1
    err = capsys.readouterr().err
    assert "UCF101 not found" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["train_kinetics", "train_synthetic"])
def test_script_main_block(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / f"{name}.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_compile_and_channels_last_flags(tiny, tmp_path):
    """--compile (backbone only; here the eager backend, which runs the same code path quickly on CPU) and
    --channels-last train, and the checkpoint keeps the original keys."""
    module = load_script("train_synthetic")
    args = tiny_args(dataset_for(module.SPEC), tmp_path, "--end-epoch", "1", "--compile", "True",
                     "--compile-backend", "eager", "--channels-last", "True")
    assert module.main(module.SPEC, args) == 0
    out = tmp_path / f"{tiny}_gates_False"
    ckpt = load_checkpoint_file(out / f"{tiny}_ep-0001.pth")
    assert not any("_orig_mod" in k or k.startswith("module.") for k in ckpt["state_dict"])
    assert "--compile: 1 sub-modules compiled with eager" in (out / "train.log").read_text()
