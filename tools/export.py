"""Export a trained model to TorchScript or ONNX and check its outputs against PyTorch.

    python tools/export.py --network srtg_r3d_18 --checkpoint results/.../srtg_r3d_18_ep-0009.pth \
        --format onnx --clip-length 16 --clip-size 224 --out srtg_r3d_18.onnx

Both formats are traced at one input shape ``(B, 3, T, S, S)``; the batch dimension stays dynamic (checked
with a batch of 2), T and S are fixed. TorchScript uses ``torch.jit.trace`` (scripting fails on the models'
optional-tensor code paths); ONNX uses the TorchScript-based exporter (``dynamo=False``: the dynamo exporter
needs the extra ``onnxscript`` package) and is checked with onnxruntime when it is installed.

Both files carry the metadata a user needs to feed them (:func:`export_metadata`: network, class names, input
layout, channel order (the model's ``input_spec``: BGR for the original's networks, RGB for networks of public
weights), mean/std and the normalisation formula, clip length/size, frame interval, gates): ONNX as
``metadata_props`` (string values, lists and numbers JSON-encoded), TorchScript as the extra file ``meta.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from evaluation.inference import WEIGHTS, load_class_names, load_model
from evaluation.views import ViewConfig, view_config
from network.srtg import Squeeze_and_Recursion
from train.engine.cli import str2bool

FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
META_FILE = "meta.json"  # TorchScript extra file holding the metadata
INPUT_NAME, OUTPUT_NAME = "video", "logits"


def export_metadata(network: str, class_names: list[str], cfg: ViewConfig, mean: list[float], std: list[float],
                    gates: bool, num_classes: int, epoch: int | None = None, channel_order: str = "BGR"
                    ) -> dict[str, object]:
    """What a user of the exported file alone needs to feed it and read its output (JSON-serialisable)."""
    return {
        "network": network, "num_classes": num_classes, "class_names": list(class_names),
        "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
        "input_layout": "(B, 3, T, H, W)", "input_shape": ["B", 3, cfg.clip_length, cfg.size, cfg.size],
        "input_dtype": "float32", "channel_order": channel_order,
        "mean": list(mean), "std": list(std),
        "normalisation": f"(x/255 - mean)/std per channel, x = uint8 {channel_order} pixel",
        "clip_length": cfg.clip_length, "clip_size": cfg.size, "frame_interval": cfg.frame_interval,
        "resize": f"short side to {cfg.size}, then a centre crop of {cfg.size}x{cfg.size}",
        "gates": gates, "output": f"{OUTPUT_NAME} (B, {num_classes}); softmax gives class probabilities",
        "checkpoint_epoch": epoch,
    }


def uses_gates(model: nn.Module) -> bool:
    """True when an SR block of ``model`` applies the temporal gate."""
    return any(m.gate and m.active for m in model.modules() if isinstance(m, Squeeze_and_Recursion))


def onnx_props(meta: dict[str, object]) -> dict[str, str]:
    """``meta`` as ONNX ``metadata_props`` (strings stay strings, everything else is JSON)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def read_metadata(path: str | Path) -> dict[str, object]:
    """The metadata embedded by this tool in a ``.onnx`` or TorchScript file, decoded back to Python values."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx  # noqa: PLC0415 (optional dependency)

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        out: dict[str, object] = {}
        for key, value in props.items():
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
        return out
    extra = {META_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks torch.jit as deprecated
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra[META_FILE]:
        raise ValueError(f"{path}: no {META_FILE} inside; re-export it with tools/export.py")
    return json.loads(extra[META_FILE])


def feeding_instructions(meta: dict[str, object], fmt: str, path: Path) -> str:
    """A few lines telling a user how to prepare the input of ``path`` and where the metadata is."""
    t, s = meta["clip_length"], meta["clip_size"]
    names = meta["class_names"]
    read = (f"onnxruntime.InferenceSession('{path}').get_modelmeta().custom_metadata_map" if fmt == "onnx" else
            f"extra = {{'{META_FILE}': ''}}; torch.jit.load('{path}', _extra_files=extra)")
    mean = ", ".join(f"{m:.4f}" for m in meta["mean"])  # type: ignore[union-attr]
    std = ", ".join(f"{v:.4f}" for v in meta["std"])  # type: ignore[union-attr]
    return "\n".join([
        f"how to feed it: input '{INPUT_NAME}' float32 (B, 3, {t}, {s}, {s}) = (batch, channels, frames, height, "
        "width)",
        f"  {t} frames {meta['frame_interval']} apart (frame interval); short side resized to {s}, centre crop "
        f"{s}x{s}; channels in {meta.get('channel_order', 'BGR')} order",
        f"  x = (pixel/255 - mean)/std per channel, mean = [{mean}], std = [{std}]",
        f"  output '{OUTPUT_NAME}' (B, {meta['num_classes']}): softmax -> class probabilities; "
        + (f"class_names (in the metadata) gives their names, e.g. {names[0]!r}" if names else
           "no class names stored (the checkpoint had none; pass --labels)"),
        f"  metadata: {read}",
    ])


def export_torchscript(model: nn.Module, example: torch.Tensor, out: Path, meta: dict[str, object] | None = None
                       ) -> Path:
    """Trace ``model`` on ``example`` ``(B, 3, T, H, W)`` and save the TorchScript module to ``out`` (``meta`` as
    the extra file ``meta.json``)."""
    # The tracer warns about Python control flow on shapes: expected, T/H/W are fixed by the trace.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(str(out), _extra_files={META_FILE: json.dumps(meta or {}, indent=1)})
    return out


def export_onnx(model: nn.Module, example: torch.Tensor, out: Path, meta: dict[str, object] | None = None,
                opset: int = 17) -> Path:
    """Export ``model`` to ONNX at ``example``'s shape with a dynamic batch axis (input 'video', output 'logits');
    ``meta`` goes into the model's ``metadata_props``."""
    import onnx  # noqa: PLC0415 (optional dependency)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(out), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load(str(out))
    for key, value in onnx_props(meta or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(out))
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
    return torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])


def verify(model: nn.Module, path: Path, fmt: str, shape: tuple[int, ...], rtol: float, seed: int = 0) -> float:
    """Relative error ``max|exported − PyTorch| / max|PyTorch|`` on a fresh random batch of 2 of ``shape``.

    Raises ``RuntimeError`` above ``rtol``. Relative to the output scale because random-init SRTG models emit
    logits of ~1e-17 (the SR blocks shrink activations: no sigmoid, docs/differences.md#8), where any absolute
    tolerance says nothing.
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
           clip_length: int | None = None, clip_size: int | None = None, num_classes: int | None = None,
           gates: bool | None = None, rtol: float = 1e-4, check: bool = True, labels: Path | None = None,
           weights: str = "model") -> tuple[Path, float | None, tuple[int, ...]]:
    """Export ``network`` (weights from ``checkpoint``) in ``fmt`` with :func:`export_metadata` embedded; returns
    the file, the relative error of its outputs against PyTorch (None with ``check=False``) and the traced input
    shape ``(1, 3, T, S, S)``. Class names come from ``labels`` (dictionary JSON or label CSV), else the
    checkpoint. ``weights``: 'model' or 'ema' (the moving average of a run trained with ``--ema-decay``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    loaded = load_model(checkpoint, network, num_classes=num_classes, gates=gates, device="cpu", weights=weights)
    model = loaded.model.float().eval()
    if out is None:
        out = (checkpoint.with_suffix("") if checkpoint else Path(loaded.network)).with_suffix(SUFFIX[fmt])
    out.parent.mkdir(parents=True, exist_ok=True)
    # the shape evaluation would use: explicit values, else the checkpoint's validation clips, else 16 x 256²
    cfg = view_config(loaded.config, clip_length=clip_length, clip_size=clip_size, frame_interval=None, clips=1,
                      crops=1, dataset=loaded.dataset)
    example = torch.randn(1, 3, cfg.clip_length, cfg.size, cfg.size, generator=torch.Generator().manual_seed(1))
    names = load_class_names(labels) if labels is not None else list(loaded.classes)
    if names and len(names) != loaded.num_classes:
        raise ValueError(f"{labels or checkpoint}: {len(names)} class names for a {loaded.num_classes}-class model; "
                         "pass the labels the model was trained with (--labels)")
    meta = export_metadata(loaded.network, names, cfg, loaded.mean, loaded.std, uses_gates(model), loaded.num_classes,
                           loaded.epoch, loaded.channel_order)
    (export_torchscript if fmt == "torchscript" else export_onnx)(model, example, out, meta)
    diff = verify(model, out, fmt, tuple(example.shape), rtol) if check else None
    return out, diff, tuple(example.shape)


def build_parser() -> argparse.ArgumentParser:
    """The export CLI."""
    p = argparse.ArgumentParser(description="Export a model to TorchScript or ONNX and verify its outputs.")
    p.add_argument("--network", type=str, default=None, help="model name (default: the checkpoint's; needed for "
                   "original checkpoints and random weights)")
    p.add_argument("--checkpoint", type=Path, default=None, help=".pth to load (default: random weights, "
                   "then --num-classes is required)")
    p.add_argument("--weights", type=str, default="model", choices=WEIGHTS, help="model: the trained weights; ema: "
                   "their moving average, saved by a run trained with --ema-decay")
    p.add_argument("--format", required=True, choices=FORMATS, help="torchscript (.pt) or onnx (.onnx)")
    p.add_argument("--clip-length", type=int, default=None,
                   help="frames T of the traced input, fixed (default: checkpoint's val clip length, else 16)")
    p.add_argument("--clip-size", type=int, default=None,
                   help="side S of the traced input, fixed (default: checkpoint's val clip size, else 256)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier size when the checkpoint has no fc")
    p.add_argument("--labels", type=Path, default=None,
                   help="class names to embed: *dictionary.json or the train CSV (default: the checkpoint's)")
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
                           gates=args.gates, rtol=args.rtol, check=not args.no_check, labels=args.labels,
                           weights=args.weights)
    except ImportError as exc:  # onnxruntime missing for the check
        print(f"error: {exc}; install onnxruntime or pass --no-check", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    check = "not checked" if diff is None else (f"max |exported - pytorch| / max |pytorch| = {diff:.2e} "
                                                  f"(--rtol {args.rtol:g}) OK")
    print(f"{out}: {args.format}, input (B, {', '.join(map(str, shape[1:]))}); {check}")
    print(feeding_instructions(read_metadata(out), args.format, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
