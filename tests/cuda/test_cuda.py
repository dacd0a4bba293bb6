"""The CUDA paths on a real GPU: fp16/bf16 steps with the scaler, a skipped non-finite step, ``--decode gpu``
(nvJPEG) against CPU decoding, channels-last and compiled outputs, a single-process NCCL group, and a checkpoint
written on the GPU read back on the CPU and on the GPU. Every test is marked ``cuda``; without a CUDA device the
conftest skips them with the reason. ``bash benchmarks/gpu_check.sh`` runs them on a GPU machine.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from engine_helpers import TinyNet

from data.pipeline.loaders import LoaderConfig, build_loaders
from data.prep.synthetic import SYNTHETIC_SPEC, generate
from network import create_model
from network.compile import compile_backbone
from train import distributed as dist
from train.engine.loop import TrainStep, make_scaler
from train.engine.lr_scheduler import MultiStep
from train.engine.optim import build_optimizer
from train.results.checkpoint import load_checkpoint_file, save_checkpoint

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda", 0)  # an index: the NCCL group binds to this device
# --decode gpu against the CPU workers' OpenCV decoding, pixel levels 0..255: the tolerance that
# tests/train/test_decode_gpu.py states for other JPEG decoders (other draws give ~255 and ~13 dB)
MAX_ABS, MIN_PSNR = 16.0, 40.0


@pytest.fixture
def exact_fp32():
    """TF32 off while outputs are compared (it rounds fp32 matmuls and convolutions to 10-bit mantissas)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _step(model: torch.nn.Module, precision: str, scaler: torch.amp.GradScaler | None = None) -> TrainStep:
    return TrainStep(build_optimizer(model, 0.05), scaler or make_scaler(CUDA, precision), MultiStep(0.05, [10], 0.1),
                     CUDA, precision)


def _batch(nan: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 4, 32, 32, generator=g)
    if nan:
        x[0] = float("nan")
    return x.to(CUDA), (torch.arange(4) % 3).to(CUDA)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_steps_train(precision: str) -> None:
    torch.manual_seed(0)
    model = TinyNet(3).to(CUDA)
    step = _step(model, precision)
    assert step.scaler.is_enabled() == (precision == "fp16")  # bf16 needs no loss scaling
    before = [p.detach().clone() for p in model.parameters()]
    for i in range(3):
        out = step(model, *_batch(), where=f"step {i}")
        assert bool(out.ok) and torch.isfinite(out.loss) and out.logits.dtype == torch.float32
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_non_finite_fp16_step_is_skipped_and_the_scale_backs_off() -> None:
    torch.manual_seed(0)
    model = TinyNet(3).to(CUDA)
    step = _step(model, "fp16", torch.amp.GradScaler("cuda", init_scale=2.0 ** 16))
    step(model, *_batch(), where="a good step")
    before = [p.detach().clone() for p in model.parameters()]
    scale = step.scaler.get_scale()
    out = step(model, *_batch(nan=True), where="a NaN batch")
    assert not bool(out.ok) and step.scaler.get_scale() < scale
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # weights (and momentum) untouched
    assert bool(step(model, *_batch(), where="the next step").ok)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(255 ** 2 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("split", ["train", "val"])
def test_decode_gpu_equals_cpu_decoding(tmp_path: Path, split: str) -> None:
    root = tmp_path
    generate(root, num_classes=4, videos_per_class=3, frames=8, size=64, val_fraction=1 / 3)  # 64² JPEGs, q90
    spec = dataclasses.replace(SYNTHETIC_SPEC, augmentation="small")  # random crops, flips and colour jitter
    got = {}
    for decode in ("cpu", "gpu"):
        cfg = LoaderConfig(clip_length=4, clip_size=32, batch_size=2, train_frame_interval=1, val_frame_interval=1,
                           long_cycles=False, short_cycles=False, workers=0, seed=3, decode=decode)
        loaders = build_loaders(spec, spec.resolve(root), cfg, [0.0] * 3, [1 / 255] * 3)  # clips in pixel levels
        loaders.set_epoch(1)
        to_train, to_val = loaders.to_device(CUDA)
        batches = [(to_train if split == "train" else to_val)(b) for b in (loaders.train if split == "train"
                                                                             else loaders.val)]
        got[decode] = torch.cat([c for c, _ in batches]), torch.cat([t for _, t in batches])
    (ref, ref_labels), (clips, labels) = got["cpu"], got["gpu"]
    assert clips.device.type == "cuda" and torch.equal(labels.cpu(), ref_labels.cpu())
    diff, psnr = float((clips - ref).abs().max()), _psnr(clips, ref)
    print(f"{split}: nvJPEG vs OpenCV: max abs diff {diff:.1f}, PSNR {psnr:.1f} dB")
    assert diff <= MAX_ABS and psnr >= MIN_PSNR


def test_channels_last_and_compiled_outputs_equal_eager(exact_fp32) -> None:
    torch.manual_seed(0)
    model = create_model("srtg_r3d_18", num_classes=8, gates=True).to(CUDA).eval()
    x = torch.randn(2, 3, 8, 32, 32, device=CUDA)
    with torch.no_grad():
        ref = model(x)
        last = model.to(memory_format=torch.channels_last_3d)(x.contiguous(memory_format=torch.channels_last_3d))
        model = model.to(memory_format=torch.contiguous_format)
        compile_backbone(model, "inductor")
        compiled = model(x)
    scale = float(ref.abs().max())
    assert float((last - ref).abs().max()) <= 1e-4 * scale
    assert float((compiled - ref).abs().max()) <= 1e-3 * scale


def test_a_single_process_nccl_group(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.distributed.is_nccl_available():
        pytest.skip("this torch build has no NCCL")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(dist.free_port()))
    assert dist.backend_for(CUDA) == "nccl"
    torch.distributed.init_process_group("nccl", rank=0, world_size=1, device_id=CUDA)
    try:
        total = dist.all_reduce_sum(torch.tensor([1.0, 2.0], device=CUDA))
        assert total.device.type == "cuda" and total.tolist() == [1.0, 2.0]
        assert dist.is_initialized() and dist.is_main() and dist.get_world_size() == 1
        dist.barrier()
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_a_checkpoint_written_on_the_gpu_loads_on_the_cpu_and_back(tmp_path: Path, exact_fp32) -> None:
    torch.manual_seed(0)
    model = create_model("srtg_r3d_18", num_classes=8).to(CUDA)
    optimizer = build_optimizer(model, 0.01)
    x = torch.randn(2, 3, 4, 32, 32, device=CUDA)
    torch.nn.functional.cross_entropy(model(x), torch.arange(2, device=CUDA)).backward()
    optimizer.step()  # momentum buffers on the GPU, as in a real checkpoint
    path = save_checkpoint(tmp_path / "srtg_r3d_18_ep-0001.pth", model, 1, optimizer, network="srtg_r3d_18")
    ckpt = load_checkpoint_file(path)
    assert all(t.device.type == "cpu" for t in ckpt["state_dict"].values())
    cpu_model = create_model("srtg_r3d_18", num_classes=8)
    cpu_model.load_state_dict(ckpt["state_dict"])
    model.eval(), cpu_model.eval()
    with torch.no_grad():
        ref = model(x)
        on_cpu = cpu_model(x.cpu())
        back = cpu_model.to(CUDA)(x)
    assert float((on_cpu - ref.cpu()).abs().max()) <= 1e-4 * float(ref.abs().max())  # CPU kernels, same weights
    assert torch.equal(back, ref)  # the same weights on the same GPU kernels
    restored = build_optimizer(cpu_model, 0.01)
    restored.load_state_dict(ckpt["optimizer"])
    assert all(s["momentum_buffer"].device.type == "cuda" for s in restored.state.values())  # follows the params
