"""VideoIter on real frames.db files: shapes, one query per clip, frame order, bad inputs skipped and counted."""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.catalog.labels import VideoRecord
from data.pipeline.video_iterator import DeferredClip, VideoIter, collate_deferred, decode_batch
from data.pipeline.video_sampler import RandomSampling, SequentialSampling
from data.pipeline.video_transforms import build_transform
from data.prep.synthetic import render_clip
from data.store.frame_decoder import OpenCVDecoder, TorchvisionDecoder
from data.store.frames_db import COUNT_NAME, DB_NAME, TABLE_SQL, write_video

RAW = build_transform("none", False, mean=[0.0] * 3, std=[1 / 255] * 3)  # output == pixel values (resized)


def numbered_frames(n: int, size: int = 24) -> list[np.ndarray]:
    """Flat frames whose pixel value encodes the frame number (8*i + 4 survives JPEG within +-2)."""
    return [np.full((size, size, 3), 8 * i + 4, np.uint8) for i in range(n)]


def frame_numbers(clip: torch.Tensor) -> list[int]:
    return [int(round((v - 4) / 8)) for v in clip.mean(dim=(0, 2, 3)).tolist()]


def make_video(root: Path, name: str, n: int, label: str = "a", class_index: int = 0, index: int = 0) -> VideoRecord:
    path = root / label / name
    write_video(path, numbered_frames(n))
    return VideoRecord(index, name, label, class_index, path, n, None, None, f"test.csv:{index + 2}")


def record_for(path: Path, n_frames: int, index: int) -> VideoRecord:
    return VideoRecord(index, path.name, "a", 0, path, n_frames, None, None, f"test.csv:{index + 2}")


def dataset(records: list[VideoRecord], num: int = 8, interval: int = 1, **kwargs) -> VideoIter:
    sampler = SequentialSampling(num, interval, shuffle=False, fix_cursor=True)
    return VideoIter(records, (num, 16, 16), sampler, RAW, name="test", **kwargs)


def broken_videos(root: Path) -> list[Path]:
    """One video per kind of damage: bad blob, missing db, n_frames too large, empty table, not a database."""
    bad_blob = root / "bad" / "blob"
    write_video(bad_blob, numbered_frames(10))
    con = sqlite3.connect(bad_blob / DB_NAME)
    con.execute("UPDATE Images SET frames = ? WHERE ObjId = ?", (b"not a jpeg", "blob/frame_00002"))
    con.commit()
    con.close()
    no_db = root / "bad" / "nodb"
    no_db.mkdir(parents=True)
    (no_db / COUNT_NAME).write_text("10\n")
    too_many = root / "bad" / "toomany"
    write_video(too_many, numbered_frames(4))
    (too_many / COUNT_NAME).write_text("1000\n")
    empty = root / "bad" / "empty"
    empty.mkdir(parents=True)
    con = sqlite3.connect(empty / DB_NAME)
    con.execute(TABLE_SQL)
    con.close()
    (empty / COUNT_NAME).write_text("10\n")
    garbage = root / "bad" / "garbage"
    garbage.mkdir(parents=True)
    (garbage / DB_NAME).write_bytes(b"definitely not sqlite" * 50)
    (garbage / COUNT_NAME).write_text("10\n")
    return [bad_blob, no_db, too_many, empty, garbage]


def test_shapes_for_int_and_multigrid_indices(tmp_path: Path) -> None:
    records = [make_video(tmp_path, f"v{i}", 20, class_index=i % 2, label=f"c{i % 2}", index=i) for i in range(3)]
    sampler = RandomSampling(8, interval=[1, 2], seed=0)
    data = VideoIter(records, (8, 32, 32), sampler, build_transform("small", True, [0.5] * 3, [0.25] * 3))
    clip, label = data[1]
    assert clip.shape == (3, 8, 32, 32) and clip.dtype == torch.float32 and label == 1
    clip, label = data[(2, 4, 24)]
    assert clip.shape == (3, 4, 24, 24) and label == 0
    assert data.num_classes == 2 and data.labels == ["c0", "c1"] and len(data) == 3
    assert data[(0, 2, 8)][0].shape == (3, 2, 8, 8)  # a multigrid index (idx, T, S) sets the clip shape
    with pytest.raises(IndexError):
        data[3]


def test_frames_in_temporal_order_with_one_query_per_clip(tmp_path: Path) -> None:
    record = make_video(tmp_path, "ordered", 30)
    data = dataset([record], num=8, interval=2)
    clip, _ = data[0]
    assert frame_numbers(clip) == list(range(0, 16, 2))
    statements: list[str] = []
    data._cons[record.path].set_trace_callback(statements.append)  # the cached per-process connection
    clip, _ = data[(0, 4, 16)]
    assert frame_numbers(clip) == [0, 2, 4, 6]
    assert len(statements) == 1 and statements[0].startswith("SELECT")


def test_short_video_loops_instead_of_a_static_clip(tmp_path: Path) -> None:
    data = dataset([make_video(tmp_path, "short", 5)], num=8)
    assert frame_numbers(data[0][0]) == [0, 1, 2, 3, 4, 0, 1, 2]


def test_return_video_path(tmp_path: Path) -> None:
    record = make_video(tmp_path, "v", 10)
    clip, label, path = dataset([record], num=4, return_video_path=True)[0]
    assert path == str(record.path) and label == 0


def test_every_bad_input_is_skipped_counted_and_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = make_video(tmp_path, "good", 12)
    bad = broken_videos(tmp_path)
    records = [good] + [record_for(p, 10 if p.name != "toomany" else 1000, i + 1) for i, p in enumerate(bad)]
    data = dataset(records, num=8)
    caplog.set_level(logging.WARNING, logger="data.pipeline.video_iterator")
    for i in range(1, len(records)):
        clip, _ = data[i]  # replaced by the good video (the only readable one)
        assert frame_numbers(clip) == list(range(8))
    assert data.skipped >= len(bad)
    for path in bad:
        assert sum(str(path) in r.getMessage() for r in caplog.records) == 1, path
    before = data.skipped
    data[1]
    assert data.skipped > before and sum(str(bad[0]) in r.getMessage() for r in caplog.records) == 1
    data.reset_skipped()
    assert data.skipped == 0


def test_skipped_count_is_shared_across_dataloader_workers(tmp_path: Path) -> None:
    goods = [make_video(tmp_path, f"good{i}", 12, index=i) for i in range(2)]
    records = goods + [record_for(p, 10, i + 2) for i, p in enumerate(broken_videos(tmp_path))]
    data = dataset(records, num=4)
    expected = [frame_numbers(data[i][0]) for i in range(len(records))]
    serial = data.skipped  # replacements are chosen from the index: the same count in any process
    data.reset_skipped()
    loader = DataLoader(data, batch_size=2, num_workers=2)
    clips = [c for batch, _ in loader for c in batch]
    assert [frame_numbers(c) for c in clips] == expected
    assert data.skipped == serial >= 5


def test_all_broken_data_raises_a_clear_error(tmp_path: Path) -> None:
    bad = broken_videos(tmp_path)
    data = dataset([record_for(p, 10, i) for i, p in enumerate(bad)], num=4, max_retries=3)
    with pytest.raises(RuntimeError, match="4 clips in a row could not be read.*data.check"):
        data[0]
    assert data.skipped == 4


# --- the decoder seam: reduced decoding, torchvision, deferred decoding ---

class SpyDecoder(OpenCVDecoder):
    """OpenCV decoding that records the reduction of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def decode(self, blobs, reduce=1):
        self.calls.append(reduce)
        return super().decode(blobs, reduce)


def natural_video(root: Path, size: int, n: int = 6, index: int = 0) -> VideoRecord:
    path = root / "a" / f"natural{size}_{index}"
    write_video(path, list(render_clip("rotate_ccw", np.random.default_rng(index), frames=n, size=size)))
    return record_for(path, n, index)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(255 ** 2 / ((a - b) ** 2).mean()))


RAW_SMALL = build_transform("small", False, mean=[0.0] * 3, std=[1 / 255] * 3, crop_size=224)  # multigrid 112 of 224


@pytest.mark.parametrize("stored,transform,size,reduce", [(64, RAW, 32, 2), (320, RAW_SMALL, 112, 2),
                                                          (256, RAW_SMALL, 112, 1), (64, RAW, 16, 4)])
def test_reduced_decode_matches_full_decode(tmp_path: Path, stored, transform, size, reduce) -> None:
    record = natural_video(tmp_path, stored)
    sampler = SequentialSampling(4, 1, shuffle=False, fix_cursor=True)
    spy = SpyDecoder()
    reduced = VideoIter([record], (4, size, size), sampler, transform, decoder=spy)[0][0]
    full = VideoIter([record], (4, size, size), sampler, transform, reduced_decode=False)[0][0]
    assert spy.calls == [reduce] and reduced.shape == full.shape == (3, 4, size, size)
    if reduce == 1:
        assert torch.equal(reduced, full)
    else:
        value = psnr(reduced, full)
        print(f"VideoIter {stored}px -> {size}px clip, decoded at 1/{reduce}: PSNR {value:.1f} dB vs full decode")
        assert value > 30 and (reduced - full).abs().mean() < 3  # pixel levels


def test_a_transform_that_cannot_say_what_it_needs_gets_full_frames(tmp_path: Path) -> None:
    spy = SpyDecoder()
    data = VideoIter([natural_video(tmp_path, 64)], (4, 16, 16), SequentialSampling(4, 1),
                     lambda frames, size: RAW(frames, size), decoder=spy)
    data[0]
    assert spy.calls == [1]


def test_torchvision_decoder_gives_the_opencv_clip(tmp_path: Path) -> None:
    record = natural_video(tmp_path, 64)
    sampler = SequentialSampling(4, 1, shuffle=False, fix_cursor=True)
    ref = VideoIter([record], (4, 32, 32), sampler, RAW, reduced_decode=False)[0][0]
    got = VideoIter([record], (4, 32, 32), sampler, RAW, decoder=TorchvisionDecoder("cpu"))[0][0]
    assert (got - ref).abs().mean() < 0.5  # pixel levels; torchvision decodes at full size only
    with pytest.raises(ValueError, match="decode must be one of"):
        VideoIter([record], (4, 32, 32), sampler, RAW, decode="gpu")


@pytest.mark.parametrize("train", [False, True])
def test_deferred_decoding_of_a_batch_matches_the_worker_path(tmp_path: Path, train: bool) -> None:
    records = [natural_video(tmp_path, 64, n=10, index=i) for i in range(3)]
    transform = build_transform("small", train, mean=[0.0] * 3, std=[1 / 255] * 3, crop_size=48, seed=1)
    sampler = SequentialSampling(4, 2, shuffle=False, fix_cursor=True)
    deferred = VideoIter(records, (4, 24, 24), sampler, transform, decode="deferred", return_video_path=True)
    clips, labels, paths = next(iter(DataLoader(deferred, batch_size=3, collate_fn=collate_deferred)))
    assert isinstance(clips[0], DeferredClip) and labels.dtype == torch.int64 and len(paths) == 3
    assert clips[0].reduce == 1 and clips[0].size == (4, 24, 24) and clips[0].rng is not None
    batch = decode_batch(clips, OpenCVDecoder(), transform, "cpu")
    assert batch.shape == (3, 3, 4, 24, 24) and batch.dtype == torch.float32
    assert torch.equal(decode_batch(clips, OpenCVDecoder(), transform), batch)  # the draws travel with the clip
    if not train:  # deterministic transform: the worker path gives the very same clips
        normal = VideoIter(records, (4, 24, 24), sampler, transform)
        assert torch.equal(batch, torch.stack([normal[i][0] for i in range(3)]))
    # a device decoder (torchvision here on the CPU) with the same per-clip draws: JPEG decoder tolerance
    other = decode_batch(clips, TorchvisionDecoder("cpu"), transform, "cpu")
    assert (other - batch).abs().mean() < 1.0 and not torch.equal(decode_batch(clips[::-1], OpenCVDecoder(),
                                                                             transform)[0], batch[0])
