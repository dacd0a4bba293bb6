"""tools/visualise_gates.py on a saved srtg checkpoint, for a video file and for a frames.db folder."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from data.prep.synthetic import render_clip
from data.store.frames_db import write_video
from data.store.video_io import write_video_file
from network.registry import create_model
from train.config import RunConfig
from train.results.checkpoint import save_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import visualise_gates  # noqa: E402

RUN = {"network": "srtg_r3d_18", "gates": True, "clip_length": 8, "clip_size": 32, "val_frame_interval": 2}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("srtg_r3d_18", num_classes=4)
    path = tmp_path_factory.mktemp("ckpt") / "srtg_r3d_18_ep-0001.pth"
    return save_checkpoint(path, model, 1, network="srtg_r3d_18", classes=list("abcd"),
                           config=RunConfig.from_flat(RUN).to_dict())


@pytest.fixture(scope="module")
def clip_frames() -> np.ndarray:
    return render_clip("rotate_cw", np.random.default_rng(3), frames=24, size=48)


@pytest.mark.slow
def test_draws_every_gated_block_for_a_video_file(tmp_path: Path, checkpoint: Path, clip_frames: np.ndarray,
                                                  capsys: pytest.CaptureFixture) -> None:
    video = tmp_path / "clip.mp4"
    write_video_file(video, clip_frames)
    out = tmp_path / "gates.png"
    assert visualise_gates.main(["--checkpoint", str(checkpoint), str(video), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    image = imread(out)
    assert image.shape[0] > 8 * 150 and image.shape[1] > 1000  # a row per SR block (8) plus the clip strip


@pytest.mark.slow
def test_traces_a_frames_db_folder_with_per_frame_decisions(tmp_path: Path, checkpoint: Path,
                                                            clip_frames: np.ndarray) -> None:
    folder = tmp_path / "jpg" / "rotate_cw" / "v0"
    write_video(folder, list(clip_frames))
    model, network, config = visualise_gates.load_gated_model(checkpoint, None, "tstd", None)
    assert network == "srtg_r3d_18" and config.model.gates
    cfg = visualise_gates.view_config(config, clip_length=None, clip_size=None, frame_interval=None, clips=1, crops=1)
    clip, indices = visualise_gates.load_clip(folder, cfg, [0.5] * 3, [0.25] * 3)
    assert clip.shape == (1, 3, 8, 32, 32) and indices == [4, 6, 8, 10, 12, 14, 16, 18]
    traces = visualise_gates.trace_blocks(model, clip)
    assert [t.name for t in traces][:2] == ["layer1.0.sar", "layer1.1.sar"] and len(traces) == 8
    assert [t.r.shape for t in traces][::2] == [(64, 4), (128, 2), (256, 1), (512, 1)]
    assert traces[-1].passed and traces[-1].similarity == "tstd"  # T = 1: trivially consistent
    assert visualise_gates.draw(traces, np.zeros((8, 32, 32, 3), np.uint8), indices, "t", tmp_path / "x.png").is_file()


def test_errors_are_one_line(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    assert visualise_gates.main(["--checkpoint", str(checkpoint), str(tmp_path / "missing")]) == 1
    assert "neither a video file nor a folder" in capsys.readouterr().err
    assert visualise_gates.main(["--checkpoint", str(checkpoint), "--network", "r3d_18", str(tmp_path)]) == 1
    assert "has no temporal gates" in capsys.readouterr().err


def test_the_clip_is_normalised_as_the_checkpoint_was_trained(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A checkpoint trained on RGB frames (an srtg_tv_* run) loaded as another network keeps its input_spec."""
    from network.config import TORCHVISION_INPUT, input_spec_of

    path = tmp_path / "rgb_run.pth"
    torch.save({"epoch": 1, "network": "srtg_tv_r3d_18", "state_dict": {"fc.weight": torch.zeros(4, 512),
                                                                        "fc.bias": torch.zeros(4)},
                "input_spec": TORCHVISION_INPUT.to_dict()}, path)
    model, network, _ = visualise_gates.load_gated_model(path, "srtg_r3d_18", None, None)
    assert network == "srtg_r3d_18" and input_spec_of(model) == TORCHVISION_INPUT
    assert "was saved by network 'srtg_tv_r3d_18', loading it into 'srtg_r3d_18'" in capsys.readouterr().err
