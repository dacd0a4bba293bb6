"""``--decode gpu`` on CPU: deferred batches equal the worker path's, a whole run works, bad blobs are skipped.

The deferred path decodes with torchvision's JPEG decoder, the worker path with OpenCV's, so the clips may differ
by the decoders' rounding. Measured here (torch 2.14.1 / torchvision 0.29.1 / OpenCV 5.0.0 on the CPU; synthetic
set below: 64² JPEG frames at quality 90, 'small' augmentation policy, 4x32² clips, pixel levels 0..255, every
clip of an epoch): max abs diff 0.0, PSNR inf for train and val - both CPU decoders are libjpeg-turbo with the
same IDCT and upsampling. nvJPEG on CUDA is not measured here. The test allows max abs diff <= 16 and PSNR >= 40
dB (other libjpeg builds); clips with other crops, flips or augmentations (other draws: measured 255 / 12.9 dB
when the deferred clip carried a fresh seed instead of the worker's generator) fail it.
"""
from __future__ import annotations

import dataclasses
import logging
import sqlite3
from pathlib import Path

import pytest
import torch
from engine_helpers import TinyNet, dataset_for, load_script, tiny_args, tiny_network

from data.pipeline.device_batches import DeviceBatches, device_batches
from data.pipeline.loaders import LoaderConfig, build_loaders
from data.prep.synthetic import SYNTHETIC_SPEC, generate
from data.store.frames_db import DB_NAME
from train.config import RunConfig
from train.engine.cli import parse_config
from train.engine.loop import TrainStep, evaluate, make_scaler, train_one_epoch
from train.engine.lr_scheduler import MultiStep
from train.engine.optim import build_optimizer

CPU = torch.device("cpu")
# the synthetic layout with the random crops, flips and colour/spatial augmentation of UCF-101 and friends
SPEC = dataclasses.replace(SYNTHETIC_SPEC, augmentation="small")
PIXELS = ([0.0] * 3, [1 / 255] * 3)  # mean, std: clips in pixel levels
MAX_ABS, MIN_PSNR = 16.0, 40.0


def _data(root: Path) -> Path:
    """4 classes x 3 videos (2 train, 1 val) of 8 frames at 64², written by the project's writer."""
    generate(root, num_classes=4, videos_per_class=3, frames=8, size=64, val_fraction=1 / 3)
    return root


def _loaders(root: Path, decode: str, batch: int = 2, clip_length: int = 4):
    cfg = LoaderConfig(clip_length=clip_length, clip_size=32, batch_size=batch, train_frame_interval=1,
                       val_frame_interval=1, long_cycles=False, short_cycles=False, workers=0, seed=3,
                       decode=decode)
    return build_loaders(SPEC, SPEC.resolve(root), cfg, *PIXELS)


def _epoch(loader, to_device: DeviceBatches) -> tuple[torch.Tensor, torch.Tensor]:
    clips, labels = zip(*(to_device(batch) for batch in loader))
    return torch.cat(clips), torch.cat(labels)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(255 ** 2 / ((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return _data(tmp_path_factory.mktemp("decode-gpu"))


@pytest.mark.parametrize("split", ["train", "val"])
def test_deferred_batches_equal_the_worker_batches(data_root: Path, split: str) -> None:
    cpu, gpu = _loaders(data_root, "cpu"), _loaders(data_root, "gpu")
    got = {}
    for name, loaders in (("cpu", cpu), ("gpu", gpu)):
        loaders.set_epoch(1)
        to_train, to_val = loaders.to_device(CPU)
        got[name] = _epoch(loaders.train, to_train) if split == "train" else _epoch(loaders.val, to_val)
    (ref, ref_labels), (clips, labels) = got["cpu"], got["gpu"]
    assert torch.equal(labels, ref_labels) and clips.shape == ref.shape == (len(labels), 3, 4, 32, 32)
    diff, psnr = float((clips - ref).abs().max()), _psnr(clips, ref)
    print(f"{split}: deferred (torchvision) vs worker (OpenCV) decoding: max abs diff {diff:.1f}, PSNR {psnr:.1f} dB")
    assert diff <= MAX_ABS and psnr >= MIN_PSNR
    # the tolerance is far below what other draws give: the next epoch's clips (other crops and flips)
    if split == "train":
        gpu.set_epoch(2)
        other, _ = _epoch(gpu.train, gpu.to_device(CPU)[0])
        assert _psnr(other, ref) < MIN_PSNR - 10


def _corrupt(video: Path, frame: int = 3) -> str:
    """Overwrite the JPEG blob of 1-based ``frame`` with bytes that are not a JPEG; returns its ObjId."""
    con = sqlite3.connect(video / DB_NAME)
    obj = f"{video.name}/frame_{frame:05d}"
    assert con.execute("UPDATE Images SET frames = ? WHERE ObjId = ?", (b"not a jpeg", obj)).rowcount == 1
    con.commit()
    con.close()
    return obj


def _step(model: torch.nn.Module) -> TrainStep:
    return TrainStep(build_optimizer(model, 0.01), make_scaler(CPU, "fp32"), MultiStep(0.01, [10], 0.1), CPU)


@pytest.mark.parametrize("batch", [2, 1])
def test_a_corrupt_blob_is_dropped_from_the_batch_and_counted(tmp_path: Path, caplog, batch: int) -> None:
    root = _data(tmp_path)
    loaders = _loaders(root, "gpu", batch=batch, clip_length=8)  # 8 of 8 frames: every clip reads the bad one
    bad_train, bad_val = loaders.train_set.records[0].path, loaders.val_set.records[1].path
    _corrupt(Path(bad_train))
    _corrupt(Path(bad_val), frame=8)
    to_train, to_val = loaders.to_device(CPU)
    torch.manual_seed(0)
    model = TinyNet(4)
    caplog.set_level(logging.WARNING)
    tr = train_one_epoch(model, loaders.train, _step(model), 0, to_device=to_train)
    assert (tr.samples, tr.skipped) == (7, 1)  # 8 train clips, one of them unreadable
    assert f"{Path(bad_train) / DB_NAME} frame 3: frame is not a decodable JPEG" in caplog.text
    # batch 1: the batch of the bad clip is empty, the step is skipped (the worker path would have replaced it)
    assert ("step skipped" in caplog.text) == (batch == 1)
    va = evaluate(model, loaders.val, CPU, "fp32", 0, to_device=to_val)
    assert (va.samples, va.skipped) == (3, 1)
    assert f"{Path(bad_val) / DB_NAME} frame 8" in caplog.text
    assert caplog.text.count(f"skipping unreadable clip {Path(bad_train) / DB_NAME}") == 1
    # the worker path counts the same clip in the same counter (it reads a replacement clip instead)
    cpu = _loaders(root, "cpu", batch=batch, clip_length=8)
    assert train_one_epoch(model, cpu.train, _step(model), 0).skipped == 1


def test_a_cpu_run_with_decode_gpu_trains_one_epoch_and_warns(tmp_path: Path) -> None:
    module = load_script("train_synthetic")
    with tiny_network() as tiny:
        code = module.main(module.SPEC, tiny_args(dataset_for(module.SPEC), tmp_path, "--end-epoch", "1",
                                                  "--decode", "gpu"))
    assert code == 0
    out = tmp_path / f"{tiny}_gates_False"
    log_text = (out / "train.log").read_text()
    assert log_text.count("--decode gpu on cpu: no GPU, so the batches are decoded in the main process") == 1
    assert (out / f"{tiny}_ep-0001.pth").is_file()
    assert "(val)  top-1" in log_text and "(8 clips, 0 skipped)" in log_text  # the train epoch read every clip


def test_bad_decode_values_are_one_line_errors(capsys, data_root: Path) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config(SYNTHETIC_SPEC, ["--decode", "nvjpeg"])
    assert info.value.code == 2
    assert "error: argument --decode: invalid choice: 'nvjpeg'" in capsys.readouterr().err.strip().splitlines()[-1]
    assert parse_config(SYNTHETIC_SPEC, ["--decode", "gpu"]).hardware.decode == "gpu"
    assert RunConfig().hardware.decode == "cpu"
    for make in (lambda: RunConfig.from_flat({"decode": "GPU"}), lambda: _loaders(data_root, "fast"),
                 lambda: device_batches(CPU, None, None, "fast")):
        with pytest.raises(ValueError, match=r"^--decode '(GPU|fast)' is not one of cpu, gpu$"):
            make()
