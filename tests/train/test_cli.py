"""train/engine/cli.py: original spellings and defaults, str2bool, list arguments, --gpus forms, results folder."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from data.catalog.datasets import get_dataset, list_datasets
from data.catalog.spec import DatasetSpec
from train.engine.cli import build_parser, int_list, parse_config, parse_gpus, str2bool

HACS = DatasetSpec(name="HACS", num_classes=200, folder="HACS_videos", train_csv="HACS_clips_v1.1_train.csv",
                   val_csv="HACS_clips_v1.1_val.csv", timeslices=True,
                   defaults={"clip_size": 284, "val_clip_size": 256, "val_clip_length": 16})
KINETICS = DatasetSpec(name="KINETICS-700", num_classes=700, folder="Kinetics_videos",
                       train_csv="kinetics-700_train.csv", val_csv="kinetics-700_val.csv",
                       defaults={"lr_base": 0.05, "variant": 700}, variants={200: 200, 400: 400, 600: 600, 700: 700})


def parse_args(spec, argv):
    """The parsed configuration as one flat namespace (the shape of the original's ``args``)."""
    return SimpleNamespace(**parse_config(spec, argv).flat())


@pytest.mark.parametrize("text,value", [("True", True), ("true", True), ("1", True), ("yes", True), ("on", True),
                                        ("False", False), ("false", False), ("0", False), ("no", False),
                                        ("off", False)])
def test_str2bool(text, value):
    assert str2bool(text) is value


def test_str2bool_rejects_other_words():
    with pytest.raises(argparse.ArgumentTypeError, match="expected a boolean"):
        str2bool("maybe")


def test_original_defaults():
    args = parse_args(HACS, [])
    assert (args.dataset, args.network, args.clip_length, args.clip_size) == ("HACS", "r3d_50", 16, 284)
    assert args.train_frame_interval == [1, 2] and args.val_frame_interval == 2
    assert args.lr_steps == [40, 60, 75, 90] and args.lr_base == 0.1 and args.lr_factor == 0.1
    assert args.batch_size == 48 and args.end_epoch == 120 and args.resume_epoch == -1
    assert args.long_cycles is True and args.short_cycles is True and args.fine_tune is False
    assert args.pretrained_3d is None and args.random_seed == 1 and args.save_frequency == 1
    assert (args.val_clip_length, args.val_clip_size) == (16, 256)
    assert args.gpus is None and args.device == "auto" and args.precision is None and args.gates is False


def test_readme_spellings_and_booleans():
    args = parse_args(HACS, ["--pretrained_3d", "a.pth", "--fine-tune", "True", "--long-cycles", "False",
                             "--short-cycles", "false", "--train-frame-inteval", "3", "--val-frame-inteval", "4",
                             "--gates", "True"])
    assert args.pretrained_3d == "a.pth" and args.fine_tune is True and args.gates is True
    assert args.long_cycles is False and args.short_cycles is False
    assert args.train_frame_interval == [3] and args.val_frame_interval == 4
    args = parse_args(HACS, ["--pretrained-3d", "b.pth", "--fine-tune", "False", "--train-frame-interval", "1", "2",
                             "--val-frame-interval", "5", "--fine-tune"])
    assert args.pretrained_3d == "b.pth" and args.fine_tune is True  # a bare flag means True
    assert args.train_frame_interval == [1, 2] and args.val_frame_interval == 5
    assert parse_args(HACS, ["--fine-tune", "False"]).fine_tune is False


def test_lr_steps_list_forms():
    assert parse_args(HACS, ["--lr-steps", "10", "20", "30"]).lr_steps == [10, 20, 30]
    assert parse_args(HACS, ["--lr-steps", "10,20"]).lr_steps == [10, 20]
    assert parse_args(HACS, ["--lr-steps", "[5, 7]"]).lr_steps == [5, 7]
    assert int_list(["1,2", "3"]) == [1, 2, 3]


def test_gpus_count_and_device_list():
    assert parse_gpus("4") == (4, None)
    assert parse_gpus("0,1,2,3") == (4, [0, 1, 2, 3])
    assert parse_gpus(None) == (None, None)
    args = parse_args(HACS, ["--gpus", "0,1,2,3,4,5,6,7"])
    assert parse_gpus(args.gpus) == (8, list(range(8)))
    for bad in ("0", "a", "1,1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_gpus(bad)


def test_bad_values_are_one_line_errors(capsys):
    for argv in (["--batch-size", "0"], ["--fine-tune", "maybe"], ["--lr-steps", "x"], ["--precision", "fp8"],
                 ["--workers", "-1"], ["--gpus", "zero"]):
        with pytest.raises(SystemExit) as info:
            parse_args(HACS, argv)
        assert info.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_variant_only_for_datasets_with_variants():
    assert parse_args(KINETICS, []).variant == 700
    assert parse_args(KINETICS, ["--variant", "400"]).variant == 400
    assert parse_args(KINETICS, []).lr_base == 0.05
    with pytest.raises(SystemExit):
        parse_args(KINETICS, ["--variant", "500"])
    with pytest.raises(SystemExit):
        parse_args(HACS, ["--variant", "400"])


def test_val_clip_defaults_follow_train_clip():
    spec = DatasetSpec(name="UCF101", num_classes=101, folder="UCF101_videos", train_csv="ucf101_split1_train.csv",
                       val_csv="ucf101_split1_val.csv")
    args = parse_args(spec, ["--clip-length", "8", "--clip-size", "112"])
    assert (args.val_clip_length, args.val_clip_size) == (8, 112)


@pytest.mark.parametrize("name", list_datasets())
def test_a_given_training_clip_is_the_validation_clip_over_data_set_defaults(name, tmp_path):
    """Every registered data set (several set val_clip_* defaults): command line > --config > data set > field,
    for the derived validation and warm-up clips too."""
    spec = get_dataset(name)
    d = parse_config(spec, ["--clip-length", "8", "--clip-size", "64"]).data
    assert (d.val_clip_length, d.val_clip_size) == (8, 64)
    d = parse_config(spec, ["--clip-size", "64", "--val-clip-size", "96"]).data
    assert (d.clip_size, d.val_clip_size) == (64, 96)
    plain = parse_config(spec, []).data  # nothing given: the data set's own validation clip
    assert plain.val_clip_size == spec.defaults.get("val_clip_size", plain.clip_size)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"clip_size": 48}))
    cfg = parse_config(spec, ["--config", str(config)])
    assert (cfg.data.val_clip_size, cfg.schedule.clip_warmup_size) == (48, 48)
    config.write_text(json.dumps({"clip_size": 48, "val_clip_size": 40}))
    assert parse_config(spec, ["--config", str(config)]).data.val_clip_size == 40
    assert parse_config(spec, ["--config", str(config), "--clip-size", "56"]).data.val_clip_size == 56


@pytest.mark.parametrize("name", list_datasets())
def test_help_shows_one_default_per_option_and_a_plain_class_count(name, capsys):
    with pytest.raises(SystemExit):
        build_parser(get_dataset(name)).parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    options = re.split(r" (?=--?[a-z])", text)
    assert not [o for o in options if len(re.findall(r"\(default", o)) > 1]
    assert "(1 classes)" not in text


def test_results_dir_names():
    cfg = parse_config(HACS, ["--network", "srtg_r3d_34"])
    assert cfg.results_dir() == Path("results/HACS/srtg_r3d_34_gates_False")
    assert cfg.log_path() == Path("results/HACS/srtg_r3d_34_gates_False/train.log") and cfg.task() == "HACS"
    cfg = parse_config(HACS, ["--network", "srtg_r3d_34", "--gates", "True", "--model-dir", "/x/y"])
    assert cfg.results_dir() == Path("/x/y/srtg_r3d_34_gates_True")


def test_every_argument_has_help_and_a_group():
    parser = build_parser(KINETICS)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help, action.dest
    titles = {group.title for group in parser._action_groups}
    assert {"data", "model and initialisation", "optimisation", "regularisation", "schedule", "hardware",
            "output and monitoring"} <= titles


@pytest.mark.parametrize("flag", ["--optimizer", "--momentum", "--weight-decay", "--no-decay-norm-bias",
                                  "--label-smoothing", "--mixup-alpha", "--cutmix-alpha", "--mix-prob",
                                  "--accumulate-grad", "--clip-grad-norm", "--sync-bn", "--ema-decay"])
def test_training_knob_flags_are_in_help(capsys, flag):
    with pytest.raises(SystemExit):
        build_parser(HACS).parse_args(["--help"])
    assert f"{flag} " in capsys.readouterr().out


def test_training_knob_flags_parse():
    args = parse_args(HACS, ["--optimizer", "adamw", "--no-decay-norm-bias", "--sync-bn", "False",
                             "--accumulate-grad", "2", "--label-smoothing", "0.1"])
    assert (args.optimizer, args.no_decay_norm_bias, args.sync_bn) == ("adamw", True, False)
    assert (args.accumulate_grad, args.label_smoothing) == (2, 0.1)
