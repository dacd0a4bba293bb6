"""Draw, for one clip, the per-frame SR multipliers of every SR block of an srtg_* checkpoint and where the
temporal gate passed, as a PNG.

Usage: ``python tools/visualise_gates.py --checkpoint CKPT VIDEO_OR_CLIP [--out PNG] [--network N]``

``VIDEO_OR_CLIP`` is a video file (decoded with PyAV) or a video folder of a converted data set (holding
``frames.db``). One clip is cut as ``evaluate.py`` cuts its centre view, with the checkpoint's validation
clip length, size and frame interval unless given. Per SR block the figure shows the mean over channels of
the multiplier ``r`` at each of the block's frames (green: the frame passed the cycle-consistency check in
both directions, red: it did not; the gate passes a clip when every frame does) and ``r`` as a channels x
frames heat map. The gate is computed with the checkpoint's similarity (``--similarity`` to try another);
blocks of a checkpoint trained with gates off recalibrate every sample, as in training.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from data.store.atomic import atomic_path
from data.store.frames_db import DB_NAME, FrameReadError, read_frames, read_n_frames
from data.store.video_io import VideoDecodeError
from evaluation.inference import head_classes
from evaluation.views import ViewConfig, decode_clip_frames, make_views, view_config
from network.config import InputSpec, input_spec_of
from network.gate import DEFAULT_SIMILARITY, DEFAULT_TEMPERATURE, gate_frames
from network.registry import create_model
from network.srtg import gated_blocks, set_gates_active
from network.weights import load_partial
from train.config import RunConfig
from train.results.checkpoint import load_checkpoint_file


@dataclass
class BlockTrace:
    """What one SR block computed for the clip: ``r (C,T)``, per-frame consistency ``(T,)``, the gate."""

    name: str
    r: np.ndarray
    frames_ok: np.ndarray
    similarity: str
    applied: bool

    @property
    def passed(self) -> bool:
        return bool(self.frames_ok.all())


def load_gated_model(checkpoint: str | Path, network: str | None, similarity: str | None,
                     temperature: float | None) -> tuple[nn.Module, str, RunConfig | None]:
    """The checkpoint's srtg_* model built with gates (applied only if it was trained with them), eval mode,
    and the run configuration saved in the checkpoint (None for original checkpoints)."""
    ckpt = load_checkpoint_file(checkpoint)
    config = RunConfig.from_saved(ckpt)
    model_cfg = config.model if config else None
    network = network or ckpt.get("network") or (model_cfg.network if model_cfg else None)
    if not network:
        raise ValueError(f"{checkpoint}: the checkpoint does not name its network; pass --network")
    classes = head_classes(ckpt["state_dict"]) or int(ckpt.get("num_classes") or 0)
    if not classes:
        raise ValueError(f"{checkpoint}: no 'fc.weight' in the checkpoint; is it a model checkpoint?")
    similarity = similarity or (model_cfg.gate_similarity if model_cfg else DEFAULT_SIMILARITY)
    temperature = temperature or (model_cfg.gate_temperature if model_cfg else DEFAULT_TEMPERATURE)
    try:
        model = create_model(network, num_classes=classes, gates=True, gate_similarity=similarity,
                             gate_temperature=temperature)
    except TypeError:
        raise ValueError(f"--network {network}: has no temporal gates; pass an srtg_* network") from None
    report = load_partial(model, ckpt["state_dict"])
    if report.mismatched or not report.loaded:
        raise ValueError(f"{checkpoint}: does not fit '{network}' ({len(report.mismatched)} tensors of another "
                         "shape); pass the --network it was trained with")
    set_gates_active(model, bool(model_cfg and model_cfg.gates))
    if ckpt.get("input_spec"):  # the frames its weights were trained on, as evaluate.py reads them
        model.input_spec = InputSpec.from_dict(ckpt["input_spec"])
    saved = ckpt.get("network")
    if saved and str(saved).lower() != network.lower():
        print(f"warning: {checkpoint} was saved by network '{saved}', loading it into '{network}'", file=sys.stderr)
    return model.eval(), network, config


def load_clip(source: str | Path, cfg: ViewConfig, mean: list[float], std: list[float],
              channel_order: str = "BGR") -> tuple[torch.Tensor, list[int]]:
    """``(1, 3, T, S, S)`` clip of a video file or a frames.db folder normalised in ``channel_order``, and its
    0-based frame numbers."""
    source = Path(source)
    if (source / DB_NAME).is_file():
        indices = cfg.frame_indices(read_n_frames(source))[0]
        frames = read_frames(source, indices)
    elif source.is_file():
        frames, n_frames = decode_clip_frames(source, cfg)
        indices = cfg.frame_indices(n_frames)[0]
    else:
        raise FileNotFoundError(f"{source}: neither a video file nor a folder holding {DB_NAME}")
    return make_views(frames, cfg, mean, std, channel_order), indices


@torch.no_grad()
def trace_blocks(model: nn.Module, clip: torch.Tensor) -> list[BlockTrace]:
    """Run ``clip`` and record, per gated SR block, its multipliers and per-frame gate decisions."""
    traces: list[BlockTrace] = []

    def hook(name: str, block: nn.Module) -> object:
        def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            s, r = block.squeeze_recur(inputs[0])
            ok = gate_frames(s, r, block.gate_similarity, block.gate_temperature)
            traces.append(BlockTrace(name, r[0].float().numpy(), ok[0].numpy(), block.gate_similarity,
                                     block.gate_active))
        return block.register_forward_pre_hook(record)

    handles = [hook(name, block) for name, block in gated_blocks(model).items()]
    try:
        model(clip)
    finally:
        for h in handles:
            h.remove()
    return traces


def _frame_labels(t: int, indices: list[int]) -> list[str]:
    """Tick labels of a block's ``t`` frames: the clip frames (0-based video frame numbers) each one covers."""
    per = len(indices) / t
    labels = []
    for i in range(t):
        lo, hi = indices[int(i * per)], indices[max(int(i * per), int((i + 1) * per) - 1)]
        labels.append(f"{i}\n(f{lo})" if lo == hi else f"{i}\n(f{lo}-{hi})")
    return labels


def draw(traces: list[BlockTrace], frames: np.ndarray, indices: list[int], title: str, out: str | Path) -> Path:
    """The figure: the clip's frames on top, then one row per SR block (mean multiplier, heat map)."""
    rows = len(traces) + 1
    fig = Figure(figsize=(13, 1.9 * rows + 0.6), constrained_layout=True)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 2, width_ratios=(1, 1.25))
    strip = fig.add_subplot(grid[0, :])
    strip.imshow(np.concatenate(list(frames[..., ::-1]), axis=1))  # BGR -> RGB, frames side by side
    width = frames.shape[2]
    strip.set_xticks([width * (i + 0.5) for i in range(len(indices))], [f"f{i}" for i in indices])
    strip.set_yticks([])
    strip.set_title("input clip (video frame numbers)")
    for row, tr in enumerate(traces, start=1):
        c, t = tr.r.shape
        labels = _frame_labels(t, indices)
        ax = fig.add_subplot(grid[row, 0])
        mean = tr.r.mean(0)
        ax.plot(range(t), mean, "-", color="0.5", linewidth=1)
        ax.scatter(range(t), mean, c=["tab:green" if ok else "tab:red" for ok in tr.frames_ok], s=36, zorder=3)
        ax.set_xticks(range(t), labels, fontsize=7)
        ax.set_xlim(-0.5, t - 0.5)
        ax.set_ylabel("mean r")
        verdict = "PASSED" if tr.passed else "failed"
        use = "applied" if tr.applied else "not applied: trained with gates off"
        ax.set_title(f"{tr.name} (T={t}, C={c}): gate {verdict} [{tr.similarity}; {use}]", fontsize=9,
                     color="tab:green" if tr.passed else "tab:red")
        ax.grid(True, alpha=0.3)
        heat = fig.add_subplot(grid[row, 1])
        image = heat.imshow(tr.r, aspect="auto", interpolation="nearest", cmap="viridis")
        heat.set_xticks(range(t), labels, fontsize=7)
        heat.set_ylabel("channel")
        heat.set_title(f"{tr.name}: r, channels x frames", fontsize=9)
        fig.colorbar(image, ax=heat, fraction=0.04, pad=0.01)
    fig.supxlabel("block frame (clip frames it covers); green = frame cycles back in both directions, red = not",
                  fontsize=9)
    fig.suptitle(title)
    with atomic_path(out, fsync=False) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    return Path(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", type=Path, help="a video file or a video folder holding frames.db")
    p.add_argument("--checkpoint", type=Path, required=True, help="an srtg_* checkpoint written by training")
    p.add_argument("--out", type=Path, default=None, help="PNG path (default: gates_<clip name>.png here)")
    p.add_argument("--network", type=str, default=None, help="network name (default: the checkpoint's)")
    p.add_argument("--similarity", type=str, default=None, help="gate similarity (default: the checkpoint's)")
    p.add_argument("--temperature", type=float, default=None, help="gate temperature (default: the checkpoint's)")
    p.add_argument("--clip-length", type=int, default=None, help="frames (default: the checkpoint's)")
    p.add_argument("--clip-size", type=int, default=None, help="crop side in px (default: the checkpoint's)")
    p.add_argument("--frame-interval", type=int, default=None, help="temporal stride (default: the checkpoint's)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the PNG's path."""
    args = build_parser().parse_args(argv)
    try:
        model, network, config = load_gated_model(args.checkpoint, args.network, args.similarity, args.temperature)
        cfg = view_config(config, clip_length=args.clip_length, clip_size=args.clip_size,
                          frame_interval=args.frame_interval, clips=1, crops=1)
        spec = input_spec_of(model)  # the network's input convention (RGB for the networks of public weights)
        clip, indices = load_clip(args.clip, cfg, list(spec.mean), list(spec.std), spec.channel_order)
        traces = trace_blocks(model, clip)
        pixels = clip[0].permute(1, 2, 3, 0) * torch.tensor(spec.std) + torch.tensor(spec.mean)
        if spec.channel_order == "RGB":
            pixels = pixels.flip(-1)  # back to BGR for draw()
        frames = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        out = args.out or Path(f"gates_{args.clip.stem or args.clip.name}.png")
        title = (f"{network} ({args.checkpoint.name}) on {args.clip.name}: {cfg.clip_length}x{cfg.size}², "
                 f"interval {cfg.frame_interval}")
        print(draw(traces, frames, indices, title, out))
    except (FileNotFoundError, ValueError, VideoDecodeError, FrameReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
