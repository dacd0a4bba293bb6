"""Export a trained model to TorchScript or ONNX and check its outputs against PyTorch.

    python tools/export.py --network srtg_r3d_18 --checkpoint results/.../srtg_r3d_18_ep-0010.pth \
        --format onnx --clip-length 16 --clip-size 224 --out srtg_r3d_18.onnx

Both formats are traced at one input shape ``(B, 3, T, S, S)``; the batch dimension stays dynamic (checked
with a batch of 2), T and S are fixed. TorchScript uses ``torch.jit.trace`` (scripting fails on the models'
optional-tensor code paths); ONNX uses the TorchScript-based exporter (``dynamo=False``: the dynamo exporter
needs the extra ``onnxscript`` package) and is checked with onnxruntime when it is installed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.cli import str2bool  # noqa: E402
from train.inference import load_model, view_config  # noqa: E402

FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


def export_torchscript(model: nn.Module, example: torch.Tensor, out: Path) -> Path:
    """Trace ``model`` on ``example`` ``(B, 3, T, H, W)`` and save the TorchScript module to ``out``."""
    # The tracer warns about Python control flow on shapes: expected, T/H/W are fixed by the trace.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(str(out))
    return out


def export_onnx(model: nn.Module, example: torch.Tensor, out: Path, opset: int = 17) -> Path:
    """Export ``model`` to ONNX at ``example``'s shape with a dynamic batch axis (input 'video', output 'logits')."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(out), dynamo=False, opset_version=opset, input_names=["video"],
                          output_names=["logits"], dynamic_axes={"video": {0: "batch"}, "logits": {0: "batch"}})
    return out


def run_exported(path: Path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """Outputs of the exported file on ``x`` (onnxruntime on CPU for ONNX)."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks torch.jit as deprecated
            module = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return module(x)
    import onnxruntime  # noqa: PLC0415 (optional dependency)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"video": x.numpy()})[0])


def verify(model: nn.Module, path: Path, fmt: str, shape: tuple[int, ...], rtol: float, seed: int = 0) -> float:
    """Relative error ``max|exported − PyTorch| / max|PyTorch|`` on a fresh random batch of 2 of ``shape``.

    Raises ``RuntimeError`` above ``rtol``. Relative to the output scale because random-init SRTG models emit
    logits of ~1e-17 (spec bug 5: the SR blocks shrink activations), where any absolute tolerance says nothing.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((2, *shape[1:]), generator=gen)
    with torch.no_grad():
        expected = model(x)
    got = run_exported(path, fmt, x)
    if got.shape != expected.shape:
        raise RuntimeError(f"{path}: output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}")
    diff = float((got - expected).abs().max())
    scale = float(expected.abs().max())
    rel = diff / scale if scale > 0 else diff
    if not rel <= rtol:
        raise RuntimeError(f"{path}: outputs differ from PyTorch by {diff:.3g} = {rel:.3g} of the largest logit "
                           f"(--rtol {rtol})")
    return rel


def export(network: str | None, checkpoint: Path | None, fmt: str, out: Path | None = None, *,
           clip_length: int | None = None, clip_size: int | None = None, num_classes: int | None = None, gates: bool | None = None,
           rtol: float = 1e-4, check: bool = True) -> tuple[Path, float | None, tuple[int, ...]]:
    """Export ``network`` (weights from ``checkpoint``) in ``fmt``; returns the file, the relative error of its
    outputs against PyTorch (None with ``check=False``) and the traced input shape ``(1, 3, T, S, S)``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    loaded = load_model(checkpoint, network, num_classes=num_classes, gates=gates, device="cpu")
    model = loaded.model.float().eval()
    if out is None:
        out = (checkpoint.with_suffix("") if checkpoint else Path(loaded.network)).with_suffix(SUFFIX[fmt])
    out.parent.mkdir(parents=True, exist_ok=True)
    # the shape evaluation would use: explicit values, else the checkpoint's validation clips, else 16 x 256²
    cfg = view_config(loaded.config, clip_length=clip_length, clip_size=clip_size, frame_interval=None, clips=1,
                      crops=1, dataset=loaded.dataset)
    example = torch.randn(1, 3, cfg.clip_length, cfg.size, cfg.size, generator=torch.Generator().manual_seed(1))
    (export_torchscript if fmt == "torchscript" else export_onnx)(model, example, out)
    diff = verify(model, out, fmt, tuple(example.shape), rtol) if check else None
    return out, diff, tuple(example.shape)


def build_parser() -> argparse.ArgumentParser:
    """The export CLI."""
    p = argparse.ArgumentParser(description="Export a model to TorchScript or ONNX and verify its outputs.")
    p.add_argument("--network", type=str, default=None, help="model name (default: the checkpoint's; needed for "
                   "original checkpoints and random weights)")
    p.add_argument("--checkpoint", type=Path, default=None, help=".pth to load (default: random weights, "
                   "then --num-classes is required)")
    p.add_argument("--format", required=True, choices=FORMATS, help="torchscript (.pt) or onnx (.onnx)")
    p.add_argument("--clip-length", type=int, default=None,
                   help="frames T of the traced input, fixed (default: checkpoint's val clip length, else 16)")
    p.add_argument("--clip-size", type=int, default=None,
                   help="side S of the traced input, fixed (default: checkpoint's val clip size, else 256)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier size when the checkpoint has no fc")
    p.add_argument("--gates", type=str2bool, default=None, metavar="BOOL", help="SRTG gates (default: checkpoint's)")
    p.add_argument("--out", type=Path, default=None, help="output file (default: next to the checkpoint)")
    p.add_argument("--rtol", type=float, default=1e-4,
                   help="allowed max |exported - pytorch| as a fraction of the largest PyTorch logit")
    p.add_argument("--no-check", action="store_true", help="skip running the exported model")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the exported path and the verified max difference."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401, PLC0415
        except ImportError:
            print("error: --format onnx needs the 'onnx' package (pip install onnx onnxruntime)", file=sys.stderr)
            return 1
    try:
        out, diff, shape = export(args.network, args.checkpoint, args.format, args.out, clip_length=args.clip_length,
                           clip_size=args.clip_size, num_classes=args.num_classes,
                           gates=args.gates,
                           rtol=args.rtol, check=not args.no_check)
    except ImportError as exc:  # onnxruntime missing for the check
        print(f"error: {exc}; install onnxruntime or pass --no-check", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    check = "not checked" if diff is None else (f"max |exported - pytorch| / max |pytorch| = {diff:.2e} "
                                                  f"(--rtol {args.rtol:g}) OK")
    print(f"{out}: {args.format}, input (B, {', '.join(map(str, shape[1:]))}); {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
