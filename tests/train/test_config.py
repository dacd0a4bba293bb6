"""train/config.py: one typed configuration: defaults in one place, config files, validation, saved form."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from data.catalog.datasets import get_dataset, list_datasets
from data.catalog.spec import DatasetSpec
from train.config import FIELD_GROUP, RunConfig, field_default
from train.engine.cli import build_parser, parse_config

HACS = get_dataset("hacs")


def test_every_registered_data_set_resolves_to_a_valid_configuration():
    for name in list_datasets():
        spec = get_dataset(name)
        cfg = parse_config(spec, [])
        for key, value in spec.defaults.items():
            assert cfg.flat()[key] == value, (name, key)


def test_unknown_defaults_key_fails_when_the_parser_is_built():
    spec = replace(get_dataset("ucf101"), name="UCF-TYPO", defaults={"clip_szie": 999})
    with pytest.raises(ValueError, match="data set 'UCF-TYPO' defaults: unknown configuration key 'clip_szie'; "
                                         "did you mean clip_size"):
        build_parser(spec)


def test_config_file_sets_defaults_and_the_command_line_wins(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"data": {"clip_size": 112, "clip_length": 8}, "lr_base": 0.5}))
    cfg = parse_config(HACS, ["--config", str(path), "--clip-length", "4"])
    assert (cfg.data.clip_size, cfg.data.clip_length, cfg.optim.lr_base) == (112, 4, 0.5)
    # the user's clip (file and command line) outranks HACS's own validation clip default
    assert (cfg.data.val_clip_size, cfg.data.val_clip_length) == (112, 4)


def test_yaml_config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  network: srtg_r3d_18\n  gates: true\nschedule:\n  lr_steps: [3, 6]\n")
    cfg = parse_config(HACS, ["--config", str(path)])
    assert cfg.model.network == "srtg_r3d_18" and cfg.model.gates is True and cfg.schedule.lr_steps == [3, 6]


@pytest.mark.parametrize("content,message", [
    ('{"data": {"clip_szie": 3}}', "unknown configuration key 'clip_szie'; did you mean clip_size"),
    ('{"model": {"clip_size": 3}}', "'clip_size' belongs to \\[data\\], not \\[model\\]"),
    ('[1, 2]', "expected a mapping"),
    ('{"data": ', "cannot parse"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, content, message):
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(SystemExit) as info:
        parse_config(HACS, ["--config", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("train_") or "error:" in err
    import re
    assert re.search(message, err), err


def test_saved_configuration_reruns_the_same_run(tmp_path):
    cfg = parse_config(HACS, ["--network", "srtg_r3d_18", "--clip-size", "112", "--lr-steps", "5", "9"])
    cfg.save(tmp_path / "config.json")
    again = parse_config(HACS, ["--config", str(tmp_path / "config.json")])
    assert again.to_dict() == cfg.to_dict()
    assert RunConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg


def test_checkpoint_forms():
    cfg = parse_config(HACS, ["--clip-size", "112"])
    assert RunConfig.from_saved({"config": cfg.to_dict()}) == cfg
    old = {"args": {**cfg.flat(), "gpu_ids": None, "dataset_name": "HACS"}}  # an earlier flat `vars(args)` dump
    assert RunConfig.from_saved(old).data.clip_size == 112
    assert RunConfig.from_saved({"state_dict": {}}) is None  # original checkpoints store no configuration


@pytest.mark.parametrize("argv,message", [
    (["--resume-epoch", "2", "--end-epoch", "1"], "--resume-epoch 2 with --end-epoch 1: nothing left to train"),
    (["--lr-steps", "9", "3"], "--lr-steps must be strictly increasing"),
    (["--lr-factor", "2"], "--lr-factor must be in"),
    (["--lr-warmup-epochs", "500"], "--lr-warmup-epochs must be in"),
    (["--gate-temperature", "0"], "--gate-temperature must be > 0"),
    (["--val-clip-size", "0"], "--val-clip-size must be >= 1"),
    (["--clip-warmup-epochs", "120"], "--clip-warmup-epochs must be in [0, --end-epoch 120)"),
    (["--clip-warmup-epochs", "2", "--clip-warmup-length", "0"], "--clip-warmup-length must be >= 1"),
    (["--clip-warmup-size", "0"], "--clip-warmup-size must be >= 1"),
    (["--momentum", "1"], "--momentum must be in [0, 1), got 1.0"),
    (["--weight-decay=-1e-4"], "--weight-decay must be a finite number >= 0"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0"),
    (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
    (["--mixup-alpha", "-0.2"], "--mixup-alpha must be a finite number >= 0"),
    (["--cutmix-alpha", "inf"], "--cutmix-alpha must be a finite number >= 0"),
    (["--mix-prob", "1.5"], "--mix-prob must be in [0, 1], got 1.5"),
    (["--mix-prob", "-0.1"], "--mix-prob must be in [0, 1]"),
    (["--accumulate-grad", "0"], "--accumulate-grad must be an integer >= 1, got 0"),
    (["--clip-grad-norm", "-1"], "--clip-grad-norm must be a finite number >= 0 (0: off)"),
    (["--ema-decay", "1"], "--ema-decay must be in [0, 1) (0: off), got 1.0"),
    (["--optimizer", "adam"], "invalid choice: 'adam'"),
])
def test_cross_field_rules(capsys, argv, message):
    with pytest.raises(SystemExit):
        parse_config(HACS, argv)
    assert message in capsys.readouterr().err


def test_clip_warmup_length_defaults_to_twice_the_clip():
    cfg = parse_config(HACS, ["--clip-length", "8", "--clip-warmup-epochs", "3"])
    assert (cfg.schedule.clip_warmup_epochs, cfg.schedule.clip_warmup_length, cfg.schedule.clip_warmup_size) == \
        (3, 16, cfg.data.clip_size)
    assert parse_config(HACS, ["--clip-warmup-length", "12"]).schedule.clip_warmup_length == 12


def test_each_default_lives_in_one_place():
    """The configuration's defaults are the original HACS script's; the HACS spec restates none of them."""
    assert field_default("clip_size") == 284 and field_default("lr_steps") == [40, 60, 75, 90]
    for key, value in HACS.defaults.items():
        assert field_default(key) != value, key
    assert set(FIELD_GROUP) >= set().union(*(get_dataset(n).defaults for n in list_datasets()))


def test_spec_dict_round_trip():
    from data.catalog.datasets import spec_from_dict

    spec = get_dataset("kinetics-400")
    assert spec_from_dict(spec.to_dict()) == spec
    assert isinstance(spec_from_dict(json.loads(json.dumps(spec.to_dict()))), DatasetSpec)


KNOBS = ["--optimizer", "adamw", "--momentum", "0.8", "--weight-decay", "0.05", "--no-decay-norm-bias",
         "--label-smoothing", "0.1", "--mixup-alpha", "0.8", "--cutmix-alpha", "1.0", "--mix-prob", "0.5",
         "--accumulate-grad", "4", "--clip-grad-norm", "5", "--sync-bn", "True", "--ema-decay", "0.999"]


def test_training_knobs_default_to_the_original_step():
    """SGD with Nesterov momentum 0.9, weight decay 1e-4 on every parameter, plain cross-entropy, one step per
    batch, no clipping, no SyncBN, no EMA."""
    cfg = parse_config(HACS, [])
    o, r = cfg.optim, cfg.reg
    assert (o.optimizer, o.momentum, o.weight_decay, o.no_decay_norm_bias) == ("sgd", 0.9, 1e-4, False)
    assert (o.accumulate_grad, o.clip_grad_norm, o.ema_decay, cfg.hardware.sync_bn) == (1, 0.0, 0.0, False)
    assert (r.label_smoothing, r.mixup_alpha, r.cutmix_alpha) == (0.0, 0.0, 0.0)


def test_training_knobs_survive_the_checkpoint_and_a_config_file(tmp_path):
    cfg = parse_config(HACS, KNOBS)
    o, r = cfg.optim, cfg.reg
    assert (o.optimizer, o.momentum, o.weight_decay, o.no_decay_norm_bias) == ("adamw", 0.8, 0.05, True)
    assert (o.accumulate_grad, o.clip_grad_norm, o.ema_decay, cfg.hardware.sync_bn) == (4, 5.0, 0.999, True)
    assert (r.label_smoothing, r.mixup_alpha, r.cutmix_alpha, r.mix_prob) == (0.1, 0.8, 1.0, 0.5)
    # saved in a checkpoint as plain data (torch.save / weights_only load), read back equal
    import torch

    torch.save({"config": cfg.to_dict()}, tmp_path / "c.pth")
    assert RunConfig.from_saved(torch.load(tmp_path / "c.pth", weights_only=True)) == cfg
    cfg.save(tmp_path / "config.json")
    assert parse_config(HACS, ["--config", str(tmp_path / "config.json")]) == cfg
    assert json.loads((tmp_path / "config.json").read_text())["regularisation"]["mixup_alpha"] == 0.8


def test_regularisation_group_in_a_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("regularisation:\n  label_smoothing: 0.2\noptimisation:\n  optimizer: adamw\n")
    cfg = parse_config(HACS, ["--config", str(path), "--mix-prob", "0.25"])
    assert (cfg.reg.label_smoothing, cfg.optim.optimizer, cfg.reg.mix_prob) == (0.2, "adamw", 0.25)
    path.write_text("regularisation:\n  weight_decay: 0.2\n")
    with pytest.raises(SystemExit):
        parse_config(HACS, ["--config", str(path)])


def test_an_older_checkpoint_config_without_the_knobs_reads_as_the_defaults():
    saved = parse_config(HACS, []).to_dict()
    saved.pop("regularisation")
    for key in ("optimizer", "momentum", "weight_decay", "ema_decay"):
        saved["optimisation"].pop(key)
    assert RunConfig.from_saved({"config": saved}) == parse_config(HACS, [])


def test_changed_training_knobs_are_named_with_both_values():
    from train.config import changed_fields

    saved = parse_config(HACS, KNOBS)
    now = parse_config(HACS, [*KNOBS, "--ema-decay", "0", "--mixup-alpha", "0.2", "--lr-base", "0.5"])
    assert changed_fields(saved, now) == ["--mixup-alpha 0.2 (was 0.8)", "--ema-decay 0.0 (was 0.999)"]
    assert changed_fields(saved, saved) == []
