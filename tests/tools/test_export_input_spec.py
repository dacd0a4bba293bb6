"""tools/export.py writes the model's input convention (input_spec) into the exported file's metadata."""
from __future__ import annotations

from pathlib import Path

import network
from network.config import TORCHVISION_INPUT
from tools.export import export, feeding_instructions, read_metadata
from train.results.checkpoint import save_checkpoint


def test_exported_metadata_carries_the_rgb_convention(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "tv.pth", network.create_model("tv_mc3_18", num_classes=2), 1,
                           network="tv_mc3_18", classes=["a", "b"])
    out, _, shape = export(None, ckpt, "torchscript", tmp_path / "tv.pt", clip_length=4, clip_size=32, check=False)
    meta = read_metadata(out)
    assert shape == (1, 3, 4, 32, 32) and meta["network"] == "tv_mc3_18"
    assert meta["channel_order"] == "RGB" and meta["mean"] == list(TORCHVISION_INPUT.mean)
    assert meta["std"] == list(TORCHVISION_INPUT.std) and "uint8 RGB pixel" in meta["normalisation"]
    assert "channels in RGB order" in feeding_instructions(meta, "torchscript", out)
