"""``--source video`` on real videos written by PyAV: the file reader picks the frames a conversion stores (same
count, same pixels within JPEG error, keyframe seeks included), ``data.prepare --no-convert`` lists every video of
every annotation format as the conversion finds it, the dataset gives the store's clips, and a truncated file
is skipped and counted."""
from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from datagen import gradient_frames
from mock_downloads import MOCKS

from data.catalog.labels import VideoRecord, load_records
from data.catalog.spec import manifest_path
from data.catalog.video_sources import read_sources
from data.pipeline.loaders import EpochClips, LoaderConfig, build_loaders
from data.pipeline.video_files import VideoFiles
from data.pipeline.video_iterator import VideoIter
from data.pipeline.video_sampler import RandomSampling, SampleRNG
from data.pipeline.video_transforms import build_transform
from data.prep import convert, prepare
from data.prep.convert import Job
from data.prep.synthetic import SYNTHETIC_SPEC
from data.prep.video_list import list_videos
from data.store.frames_db import read_frames, read_n_frames
from data.store.video_clips import FrameOptions, count_frames, read_clip
from data.store.video_io import VideoDecodeError, iter_frames

# JPEG (quality 90) against the decoded frame: small mean error per frame, bounded peaks at sharp edges; the
# neighbouring frame (bar moved by 3 px) is several times further away
MEAN_ERR, MAX_ERR = 4.0, 80


def moving_frames(n: int, width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """Frames with a bar that moves 3 px per frame (each frame distinguishable) over a textured gradient."""
    frames = gradient_frames(n, width, height, seed).astype(np.int16)
    noise = np.random.default_rng(seed).integers(-6, 6, frames.shape[1:], dtype=np.int16)
    frames += noise[None]
    for i in range(n):
        frames[i, :, (3 * i) % (width - 6):(3 * i) % (width - 6) + 6] = 20
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_gop_video(path: Path, frames: np.ndarray, fps: int = 25, gop: int = 8) -> Path:
    """H.264 with a keyframe every ``gop`` frames and B-frames, so reads seek and reorder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt, stream.width, stream.height = "yuv420p", frames.shape[2], frames.shape[1]
        stream.options = {"crf": "18", "preset": "veryfast", "g": str(gop), "bf": "2"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    """Frame by frame: ``a[k]`` is ``b[k]`` within JPEG error."""
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).reshape(len(a), -1)
    assert diff.mean(axis=1).max() < MEAN_ERR and diff.max() <= MAX_ERR, (diff.mean(axis=1), diff.max())


@pytest.mark.parametrize("fps,short_side,cut", [(None, None, (None, None)), (10.0, 32, (None, None)),
                                                (None, 48, (0.9, 2.3))])
def test_video_source_reads_the_frames_data_convert_stores(tmp_path, fps, short_side, cut):
    src = tmp_path / "src"
    write_gop_video(src / "wave" / "clip.mp4", moving_frames(75))
    csv = tmp_path / "list_train.csv"
    start, end = cut
    if start is None:
        csv.write_text("label,id,split\nwave,clip,train\n")
    else:
        csv.write_text(f"label,id,time_start,time_end,split\nwave,clip,{start},{end},train\n")
    argv = ["videos", str(src), str(tmp_path / "store"), "--csv", str(csv)]
    argv += (["--timeslices"] if start is not None else []) + (["--fps", str(fps)] if fps else [])
    argv += ["--short-side", str(short_side)] if short_side else []
    assert convert.main(argv) == 0
    jpg = tmp_path / "store" / "jpg"
    stored = next(p.parent for p in jpg.rglob("frames.db"))
    n = read_n_frames(stored)
    assert count_frames(src / "wave" / "clip.mp4", start, end, fps) == n
    options = FrameOptions(fps, short_side)
    # any order, repeats, the last frame, frames after the first keyframe (seeks)
    indices = [n - 1, 0, 1, n // 2, n // 2, 17 % n, 9 % n, n - 2]
    clip = read_clip(src / "wave" / "clip.mp4", indices, start, end, options)
    assert_close(clip, read_frames(stored, indices))
    with pytest.raises(AssertionError):  # the comparison tells neighbouring frames apart
        assert_close(clip[1:2], read_frames(stored, [1]))
    # bit-identical to the converter's own decoder run without JPEG (PyAV path)
    raw = list(iter_frames(src / "wave" / "clip.mp4", decoder="pyav", start=start, end=end, fps=fps,
                           short_side=short_side))
    assert len(raw) == n and all(np.array_equal(clip[k], raw[i]) for k, i in enumerate(indices))
    with pytest.raises(VideoDecodeError, match=f"frame {n} asked for, the video has {n} frames"):
        read_clip(src / "wave" / "clip.mp4", [n], start, end, options)


@pytest.mark.parametrize("name", sorted(MOCKS))
def test_prepare_no_convert_lists_every_video_as_the_conversion_stores_it(tmp_path, name):
    src, ann = tmp_path / "download", tmp_path / "annotations"
    MOCKS[name](src, ann)
    common = [name, "--videos", str(src), "--val-fraction", "0.34", "--fps", "20"]
    common += ["--annotations", str(ann)] if name != "folders" else []
    assert prepare.main([*common, "--out", str(tmp_path / "video"), "--no-convert"]) == 0
    assert prepare.main([*common, "--out", str(tmp_path / "store")]) == 0
    facts = prepare.DATASETS[name]
    folder = tmp_path / "video" / "data" / facts.folder
    assert not (folder / "jpg").exists() and (folder / "videos.json").is_file()
    sources = read_sources(manifest_path(folder / "jpg"))
    assert sources.options == FrameOptions(20.0)
    # the store's videos.json lists the same files
    assert read_sources(manifest_path(tmp_path / "store" / "data" / facts.folder / "jpg")).entries == sources.entries
    jpg = tmp_path / "store" / "data" / facts.folder / "jpg"
    for csv_name in (facts.train_csv, facts.val_csv):
        csv_name = csv_name.format(split=1, variant=700)
        video, _ = load_records(tmp_path / "video" / "labels" / csv_name, sources.videos, facts.timeslices,
                                find=sources.find, save_dictionary=False)
        store, _ = load_records(tmp_path / "store" / "labels" / csv_name, jpg, facts.timeslices,
                                save_dictionary=False)
        assert video and [(r.label, r.video_id, r.class_index, r.n_frames) for r in video] == [
            (r.label, r.video_id, r.class_index, r.n_frames) for r in store]
        for v, s in zip(video, store):
            last = v.n_frames - 1
            assert_close(read_clip(v.path, [0, last], v.start, v.end, sources.options), read_frames(s.path, [0, last]))


def synthetic_videos(root: Path, n_classes: int = 2, per_class: int = 2, frames: int = 12) -> Path:
    """A synthetic set laid out for SYNTHETIC_SPEC with only the video list (no frame store), and its mp4 files
    converted by ``data.convert`` in ``root/conv``; returns ``root``."""
    from data.prep.synthetic import generate

    generate(root / "gen", num_classes=n_classes, videos_per_class=per_class, frames=frames, size=32,
             val_fraction=0.5, videos_dir=root / "videos")
    assert convert.main(["videos", str(root / "videos"), str(root / "conv"), "--quality", "100"]) == 0
    for labels in (root / "labels", root / "conv" / "labels"):
        labels.mkdir(parents=True)
        for p in (root / "gen" / "labels").iterdir():
            (labels / p.name).write_bytes(p.read_bytes())
    jpg = root / "data" / SYNTHETIC_SPEC.folder / "jpg"
    jobs = [Job(v, jpg / v.parent.name / v.stem) for v in sorted((root / "videos").rglob("*.mp4"))]
    sources, failures = list_videos(jobs, jpg, root / "videos", FrameOptions())
    assert not failures
    sources.write(manifest_path(jpg))
    return root


def loader_config(**kw) -> LoaderConfig:
    base = dict(clip_length=4, clip_size=32, batch_size=2, train_frame_interval=[1, 2], val_frame_interval=1,
                long_cycles=False, short_cycles=False, workers=0, seed=3)
    return LoaderConfig(**{**base, **kw})


def test_loaders_give_the_store_clips_from_the_files(tmp_path):
    root = synthetic_videos(tmp_path)
    # the store of the same mp4 files
    store = build_loaders(SYNTHETIC_SPEC, SYNTHETIC_SPEC.resolve(root / "conv"), loader_config(), [0.0] * 3,
                          [1.0] * 3)
    video = build_loaders(SYNTHETIC_SPEC, SYNTHETIC_SPEC.resolve(root, "video"), loader_config(source="video"),
                          [0.0] * 3, [1.0] * 3)
    assert isinstance(video.train_set, VideoFiles) and type(store.train_set) is VideoIter
    assert [(r.video_id, r.n_frames) for r in video.train_set.records] == [
        (r.video_id, r.n_frames) for r in store.train_set.records]
    # the synthetic frames carry per-frame noise: JPEG (even at quality 100, 4:2:0) leaves ~3 grey levels, the
    # neighbouring frame is ~9 away
    batches = {}
    for epoch in (0, 1):
        store.set_epoch(epoch)
        video.set_epoch(epoch)
        batches[epoch] = list(zip(store.train, video.train))
        for (a, la), (b, lb) in batches[epoch]:  # same windows and augmentation draws
            assert torch.equal(la, lb) and (a - b).abs().mean() < 4.5 / 255
    assert any((a - b).abs().mean() > 4.5 / 255 for ((a, _), _), (_, (b, _)) in zip(batches[0], batches[1]))
    (a, _), (b, _) = next(iter(store.val)), next(iter(video.val))
    assert (a - b).abs().mean() < 4.5 / 255
    with pytest.raises(ValueError, match="--decode cpu"):
        build_loaders(SYNTHETIC_SPEC, SYNTHETIC_SPEC.resolve(root, "video"), loader_config(source="video",
                                                                                            decode="gpu"), [0.0] * 3,
                      [1.0] * 3)
    with pytest.raises(FileNotFoundError, match="--no-convert"):
        SYNTHETIC_SPEC.resolve(root / "gen", "video")


def test_a_truncated_video_is_skipped_and_counted(tmp_path, caplog):
    paths = [write_gop_video(tmp_path / f"v{i}.mp4", moving_frames(30, seed=i)) for i in range(3)]
    records = [VideoRecord(i, p.stem, "a", 0, p, count_frames(p), None, None, f"t.csv:{i + 2}")
               for i, p in enumerate(paths)]
    broken = paths[1].read_bytes()
    paths[1].write_bytes(broken[:len(broken) // 3])  # cut after it was listed, as a failing disk would
    sampler = RandomSampling(num=4, interval=1, speed=(1.0, 1.0))
    sampler.rng = SampleRNG(0, 0)
    transform = build_transform("none", True, [0.0] * 3, [1.0] * 3, crop_size=32)
    transform.rng = SampleRNG(0, 1)
    data = EpochClips(VideoFiles(records, (4, 32, 32), sampler, transform, name="test"))
    with caplog.at_level(logging.WARNING):
        items = [data[(i, 4, 32, 0)] for i in range(3) for _ in range(2)]
    assert all(clip.shape == (3, 4, 32, 32) for clip, _ in items)
    tries, current = 0, 1  # the bad video, then its deterministic replacements until a good one
    while current == 1:
        current, tries = data.dataset._replacement(1, tries), tries + 1
    assert data.skipped == 2 * tries  # read twice, every failed read counted
    warned = [r.getMessage() for r in caplog.records if "skipping unreadable clip" in r.getMessage()]
    assert len(warned) == 1 and str(paths[1]) in warned[0]  # one warning per file
    # the replacement is another video's clip, chosen deterministically
    assert torch.equal(items[2][0], items[3][0])


def test_a_file_changed_since_it_was_listed_is_refused(tmp_path):
    path = write_gop_video(tmp_path / "v.mp4", moving_frames(30))
    listed = count_frames(path)
    write_gop_video(path, moving_frames(40, seed=1))  # replaced by another video: index i is another frame now
    with pytest.raises(VideoDecodeError, match="holds 40 frames, 30 when it was listed"):
        read_clip(path, [0, 5], frames=listed)
    assert read_clip(path, [0, 5], frames=40).shape == (2, 64, 96, 3)


def test_a_stream_without_timestamps_is_decoded_in_order(tmp_path, monkeypatch):
    path = write_gop_video(tmp_path / "v.mp4", moving_frames(40))
    want = list(iter_frames(path, decoder="pyav", start=0.3, end=1.5, fps=10, short_side=32))
    no_pts = classmethod(lambda cls, *args: cls(None, (), 0))
    monkeypatch.setattr("data.store.video_clips.FrameTimeline.read", no_pts)
    assert count_frames(path, 0.3, 1.5, 10) == len(want)
    indices = [len(want) - 1, 0, 2, 2]
    clip = read_clip(path, indices, 0.3, 1.5, FrameOptions(10, 32))
    assert all(np.array_equal(clip[k], want[i]) for k, i in enumerate(indices))
    with pytest.raises(VideoDecodeError, match=f"frame {len(want)} could not be decoded"):
        read_clip(path, [len(want)], 0.3, 1.5, FrameOptions(10, 32))
