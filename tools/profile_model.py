"""Profile one network: parameters, GFLOPs per clip, forward and backward latency.

FLOPs are counted with ptflops' pytorch backend (module hooks: Conv3d, Linear and the nn.LSTM/nn.GRU cells;
norms, activations and pooling are left out) and reported as 2 FLOPs per multiply-accumulate, the convention of
the reference figures measured from the original code (tests/reference/original_models.json.gz), which are
printed alongside when that file is present.

    python tools/profile_model.py --network srtg_r3d_50 --clip-length 16 --clip-size 112
"""
from __future__ import annotations

import argparse
import copy
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

import network
from evaluation.inference import load_model
from evaluation.views import view_config
from network.conv import TrimmedConv3d
from train.distributed import pick_device

ROOT = Path(__file__).resolve().parents[1]

REFERENCE = ROOT / "tests" / "reference" / "original_models.json.gz"
NOT_COUNTED = [nn.BatchNorm3d, nn.GroupNorm, nn.ReLU, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default=None, help="registered model name, e.g. srtg_r3d_50 (default: the "
                   "--checkpoint's)")
    p.add_argument("--checkpoint", type=Path, default=None, help="profile the network of this checkpoint (its "
                   "class count and validation clip size unless given)")
    p.add_argument("--clip-length", type=int, default=None, help="frames per clip T (default: checkpoint's, else 16)")
    p.add_argument("--clip-size", type=int, default=None, help="spatial size H = W (default: checkpoint's, else 112)")
    p.add_argument("--batch-size", type=int, default=1, help="clips per timed step (FLOPs are per clip)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when available")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--num-classes", type=int, default=None, help="classifier width (default: checkpoint's, else 400)")
    args = p.parse_args(argv)
    if not args.network and not args.checkpoint:
        p.error("give --network or --checkpoint")
    return args


def count_flops(model: nn.Module, clip_length: int, clip_size: int) -> int:
    """FLOPs (2 per MAC) of one clip ``(1, 3, T, S, S)`` through ``model`` (counted on a copy, in eval mode)."""
    from ptflops import get_model_complexity_info  # noqa: PLC0415  (only when counting)
    from ptflops.pytorch_ops import conv_flops_counter_hook  # noqa: PLC0415

    # nominal FLOPs, as the original counts them: a TrimmedConv3d counts as the full Conv3d it stands for
    macs, _ = get_model_complexity_info(copy.deepcopy(model).eval(), (3, clip_length, clip_size, clip_size),
                                        as_strings=False, print_per_layer_stat=False, backend="pytorch",
                                        ignore_modules=NOT_COUNTED,
                                        custom_modules_hooks={TrimmedConv3d: conv_flops_counter_hook},
                                        backend_specific_config={"count_functional": False})
    if macs is None:
        raise RuntimeError("ptflops could not count this model (see the traceback above)")
    return int(2 * macs)


def reference_figures(name: str, clip_length: int, clip_size: int, num_classes: int) -> dict | None:
    """Params and FLOPs of the original code for ``name`` at this input, or None when not measured/available."""
    if not REFERENCE.is_file():
        return None
    with gzip.open(REFERENCE, "rt") as fh:
        models = {k.lower(): v for k, v in json.load(fh)["models"].items()}
    entry = models.get(name.lower())
    if entry is None:
        return None
    outputs = entry["outputs"].get(str(clip_size))
    same_input = outputs is not None and outputs["input_shape"][2] == clip_length
    return {"params": entry["param_count"] + 513 * (num_classes - entry["num_classes"]),
            "flops": outputs["flops_total"] if same_input else None}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(model: nn.Module, clip: torch.Tensor, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds of: inference forward (eval, no grad), training forward, and its backward."""
    device = clip.device
    runs: dict[str, list[float]] = {"forward_eval": [], "forward_train": [], "backward": []}
    for i in range(warmup + repeats):
        model.eval()
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            model(clip)
        _sync(device)
        t1 = time.perf_counter()
        model.train()
        if clip.shape[0] == 1:  # batch statistics of one clip are undefined on 1x1x1 maps: use the running ones
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        model.zero_grad(set_to_none=True)
        loss = model(clip).float().logsumexp(dim=1).mean()
        _sync(device)
        t2 = time.perf_counter()
        loss.backward()
        _sync(device)
        t3 = time.perf_counter()
        if i >= warmup:
            for key, seconds in zip(runs, (t1 - t0, t2 - t1, t3 - t2)):
                runs[key].append(seconds)
    return {key: statistics.median(v) for key, v in runs.items()}


def _model(args: argparse.Namespace) -> tuple[nn.Module, str, int, int]:
    """The model to profile (from ``--checkpoint`` or ``--network``) and the clip length and size."""
    if args.checkpoint is None:
        model = network.create_model(args.network, num_classes=args.num_classes or 400)
        return model, args.network, args.clip_length or 16, args.clip_size or 112
    loaded = load_model(args.checkpoint, args.network, num_classes=args.num_classes)
    views = view_config(loaded.config, clip_length=args.clip_length, clip_size=args.clip_size, frame_interval=None,
                        clips=1, crops=1, dataset=loaded.dataset)
    return loaded.model, loaded.network, views.clip_length, views.size


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = pick_device(args.device)
        model, args.network, length, size = _model(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.clip_length, args.clip_size, args.num_classes = length, size, model.get_classifier().out_features
    params = sum(p.numel() for p in model.parameters())
    flops = count_flops(model, args.clip_length, args.clip_size)
    ref = reference_figures(args.network, args.clip_length, args.clip_size, args.num_classes)
    print(f"network {args.network}: input (B, 3, {args.clip_length}, {args.clip_size}, {args.clip_size}), "
          f"device {device}")
    print(f"params  {params / 1e6:10.3f} M", end="")
    print(f"   (original: {ref['params'] / 1e6:.3f} M)" if ref else "   no reference")
    print(f"GFLOPs  {flops / 1e9:10.3f} per clip", end="")
    print(f"   (original: {ref['flops'] / 1e9:.3f}, {100 * (flops / ref['flops'] - 1):+.2f}%)"
          if ref and ref["flops"] else "   no reference")
    clip = torch.randn(args.batch_size, 3, args.clip_length, args.clip_size, args.clip_size, device=device)
    times = time_model(model.to(device), clip, args.repeats, args.warmup)
    print(f"latency (batch {args.batch_size}, median of {args.repeats} after {args.warmup} warm-up): "
          f"forward eval {1e3 * times['forward_eval']:.1f} ms, forward train {1e3 * times['forward_train']:.1f} ms, "
          f"backward {1e3 * times['backward']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
