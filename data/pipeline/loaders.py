"""Train/val DataLoaders of a data set: one DataLoader per split, multigrid shapes chosen by the batch sampler.

The train DataLoader takes a
:class:`~data.pipeline.multigrid.MultigridBatchSampler` that yields ``(idx, T, S)`` per clip, so one worker pool
serves every shape (docs/differences.md#26); the val clip size is an argument (default: the train clip size; #19).
The temporal window and the augmentation of a training clip are drawn from generators of ``(seed, epoch, sample
index)`` (`SampleRNG`, selected by :class:`EpochClips`), so they do not depend on the number of workers, on which
worker reads the clip, or on where an epoch was resumed (docs/differences.md#39). ``--source video`` reads the same
clips from the video files (`data.pipeline.video_files`).
"""
from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data.catalog.labels import load_records, warn_split_overlap
from data.catalog.spec import SOURCES, DatasetPaths, DatasetSpec, manifest_path
from data.catalog.video_sources import VideoSources, read_sources
from data.pipeline.device_batches import DeviceBatches, check_decode, device_batches
from data.pipeline.multigrid import MultigridBatchSampler
from data.pipeline.rng import STREAMS, mix
from data.pipeline.video_files import VideoFiles
from data.pipeline.video_iterator import VideoIter, collate_deferred
from data.pipeline.video_sampler import RandomSampling, SampleRNG, SequentialSampling
from data.pipeline.video_transforms import build_transform

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoaderConfig:
    """The data settings of a run.

    ``batch_size`` is the base batch of one optimiser step over all ranks (the original's ``--batch-size``,
    which DataParallel split over the GPUs); each rank loads ``batch_size // world_size`` clips per base
    batch, and multigrid multiplies that. ``val_clip_length``/``val_clip_size`` default to the train
    clip length/size (original: hard-coded 16 frames of 256² for Kinetics/HACS/MiT, the train values
    elsewhere). ``val_batch_size`` defaults to the per-rank base batch. ``pin_memory`` None means "on CUDA".
    ``drop_last`` decides the ``N mod world_size`` leftover train samples (see MultigridBatchSampler).
    ``persistent_workers`` keeps the worker processes between epochs (faster; the training draws do not
    depend on the workers, see :class:`EpochClips`). ``decode``: ``'cpu'`` (workers decode and transform) or
    ``'gpu'`` (workers only read the JPEG blobs; `data.pipeline.device_batches` decodes the batch on the run's device).
    ``clip_warmup = (E, T, S)``: the first ``E`` epochs train on ``T``-frame clips of side ``S``.
    ``source``: ``'store'`` (the frame databases under jpg/) or ``'video'`` (the video files listed in
    ``videos.json``, decoded in the workers: `data.pipeline.video_files.VideoFiles`).
    """

    # the run's settings: filled from the RunConfig, whose fields hold their defaults (train/config.py)
    clip_length: int
    clip_size: int
    batch_size: int
    train_frame_interval: int | Sequence[int]
    val_frame_interval: int
    long_cycles: bool
    short_cycles: bool
    workers: int
    seed: int
    # loader-only knobs
    val_clip_length: int | None = None
    val_clip_size: int | None = None
    val_batch_size: int | None = None
    prefetch_factor: int = 2
    pin_memory: bool | None = None
    drop_last: bool = False
    persistent_workers: bool = True
    decode: str = "cpu"
    clip_warmup: tuple[int, int, int] = (0, 0, 0)
    source: str = "store"
    max_missing: float | None = None  # percent of a CSV's rows whose video may be missing (None: no limit)


@dataclass
class Loaders:
    """What ``build_loaders`` returns; call ``set_epoch(e)`` before each training epoch and feed each batch
    through ``to_device(device)``'s converters (``--decode``)."""

    train: DataLoader
    val: DataLoader
    train_set: VideoIter
    val_set: VideoIter
    batch_sampler: MultigridBatchSampler
    num_classes: int
    classes: list[str]
    batch_per_rank: int
    seed: int = 0
    rank: int = 0
    decode: str = "cpu"

    def to_device(self, device: torch.device | str) -> tuple[DeviceBatches, DeviceBatches]:
        """The train and val batch converters of this ``--decode`` mode on ``device`` (`device_batches`)."""
        return device_batches(device, self.train_set, self.val_set, self.decode)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select ``epoch``'s sample order (the batch sampler's permutation of ``(seed, epoch)``) and its first
        step ``start`` (> 0 when resuming inside the epoch); the clips' draws follow from ``(seed, epoch,
        index)``, so a run resumed at any step reads what an uninterrupted run would have."""
        self.batch_sampler.set_epoch(epoch, start)
        if self.train.generator is not None:
            self.train.generator.manual_seed(mix(self.seed, self.rank, STREAMS["loader"], epoch))


class EpochBatches(Sampler[list]):
    """The batch sampler's ``(idx, T, S)`` batches with the epoch appended: ``(idx, T, S, epoch)``, so that
    (persistent) DataLoader workers know the epoch of every clip they read."""

    def __init__(self, batch_sampler: MultigridBatchSampler) -> None:
        self.batch_sampler = batch_sampler

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        epoch = self.batch_sampler.epoch
        for batch in self.batch_sampler:
            yield [(*key, epoch) for key in batch]

    def __len__(self) -> int:
        return len(self.batch_sampler)


class EpochClips(Dataset):
    """``dataset[(idx, T, S, epoch)]``: selects the sampler's and the transform's :class:`SampleRNG` of
    ``(epoch, idx)``, then reads ``dataset[(idx, T, S)]``; every other attribute is the wrapped VideoIter's."""

    def __init__(self, dataset: VideoIter) -> None:
        self.dataset = dataset
        self.streams = [part.rng for part in (dataset.sampler, dataset.video_transform)
                        if isinstance(getattr(part, "rng", None), SampleRNG)]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, int, int]) -> tuple:
        idx, t, s, epoch = key
        for rng in self.streams:
            rng.select(epoch, idx)
        return self.dataset[(idx, t, s)]

    def __getattr__(self, name: str):
        if name == "dataset":  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ShardSampler(Sampler[int]):
    """Sequential evaluation sampler: rank ``r`` reads indices ``r, r+W, r+2W, …``.

    Unlike ``DistributedSampler`` nothing is padded, so every sample is evaluated exactly once over all ranks
    and metrics summed across ranks are exact (ranks may differ by one sample).
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.num_samples, self.rank, self.world_size = int(num_samples), rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world_size))


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed Python's and numpy's global RNGs from the worker's torch seed, which the
    DataLoader derives per worker (base seed + id), so workers never share random streams (docs/differences.md#17)."""
    seed = torch.initial_seed()
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _loader_kwargs(cfg: LoaderConfig) -> dict:
    workers = max(0, int(cfg.workers))
    pin = torch.cuda.is_available() if cfg.pin_memory is None else bool(cfg.pin_memory)
    kwargs: dict = {"num_workers": workers, "pin_memory": pin}
    if workers > 0:
        kwargs.update(worker_init_fn=seed_worker, persistent_workers=bool(cfg.persistent_workers),
                      prefetch_factor=cfg.prefetch_factor)
    return kwargs


def video_sources(paths: DatasetPaths) -> VideoSources:
    """The data set's video list (``--source video``), with a WARNING when a frame store beside it was converted
    with other frame options (its frame ``i`` is then another frame than the video source's)."""
    sources = read_sources(manifest_path(paths.jpg_dir))
    stored = paths.jpg_dir.parent / "convert_options.json"
    try:
        converted = json.loads(stored.read_text()) if stored.is_file() else None
    except (OSError, ValueError):
        converted = None
    o = sources.options
    listed = {"fps": o.fps, "short_side": o.short_side, "size": list(o.size) if o.size else None}
    if isinstance(converted, dict) and any(converted.get(k) != v for k, v in listed.items()):
        logger.warning("%s lists the videos with %s but %s says the frame store was converted with %s: the two "
                       "sources index different frames (re-run `python -m data.prepare` with the store's options)",
                       manifest_path(paths.jpg_dir), listed, stored, {k: converted.get(k) for k in listed})
    return sources


def build_loaders(spec: DatasetSpec, paths: DatasetPaths, cfg: LoaderConfig, mean: Sequence[float],
                  std: Sequence[float], rank: int = 0, world_size: int = 1, channel_order: str = "BGR") -> Loaders:
    """Train and val loaders of ``spec`` at ``paths`` for this ``rank``.

    Train: ``RandomSampling(clip_length, train_frame_interval)`` + the train transform of
    ``spec.augmentation`` (cropped at ``clip_size``, resized to each multigrid size), batches from a
    :class:`MultigridBatchSampler` (``(idx, T, S)`` per clip, base shape without cycles). Val:
    ``SequentialSampling`` (one fixed window per video, as the original's ``fix_cursor=True, shuffle=True``),
    the eval transform, ``(val_clip_length, val_clip_size²)`` clips, sharded by :class:`ShardSampler`.
    Batches are ``(clips (B, 3, T, S, S) float32, labels (B,) int64)``; with ``cfg.decode == 'gpu'``
    ``(list[DeferredClip], labels)`` for ``Loaders.to_device``. ``mean``, ``std`` and ``channel_order`` are the
    model's input convention (`network.config.InputSpec`).
    """
    mode = "deferred" if check_decode(cfg.decode) == "gpu" else "frames"
    if cfg.source not in SOURCES:
        raise ValueError(f"--source '{cfg.source}' is not one of {', '.join(SOURCES)}")
    if cfg.batch_size < world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} is smaller than the {world_size} processes; "
                         "use a batch of at least one clip per process")
    batch = cfg.batch_size // world_size
    if batch * world_size != cfg.batch_size:
        logger.warning("batch size %d is not divisible by %d processes: using %d per process (%d in total)",
                       cfg.batch_size, world_size, batch, batch * world_size)
    sources = video_sources(paths) if cfg.source == "video" else None
    where, find = (sources.videos, sources.find) if sources else (paths.jpg_dir, None)
    dataset = partial(VideoFiles, options=sources.options) if sources else VideoIter
    train_records, dictionary = load_records(paths.train_csv, where, spec.timeslices, find=find,
                                             max_missing=cfg.max_missing)
    if not train_records:
        raise ValueError(f"{paths.train_csv}: none of its videos were found under {where}; "
                         "convert the videos first or point --dataset at the data root")
    val_records, dictionary = load_records(paths.val_csv, where, spec.timeslices, dictionary=dictionary,
                                           strict_labels=True, find=find, max_missing=cfg.max_missing)
    warn_split_overlap(train_records, val_records, str(paths.val_csv))
    if not val_records:
        raise ValueError(f"{paths.val_csv}: none of its videos were found under {where}; "
                         "validation needs at least one converted video")
    if max(dictionary.values()) >= spec.num_classes:
        raise ValueError(f"{paths.train_csv}: {len(dictionary)} labels but {spec.name} has {spec.num_classes} "
                         "classes; check the CSV and the dataset/--variant choice")

    size = (cfg.clip_length, cfg.clip_size, cfg.clip_size)
    train_sampler = RandomSampling(num=cfg.clip_length, interval=cfg.train_frame_interval, speed=(1.0, 1.0))
    # cropped at the nominal clip size, then resized to each multigrid size (the original's field of view)
    train_transform = build_transform(spec.augmentation, True, mean, std, crop_size=cfg.clip_size,
                                      channel_order=channel_order)
    train_sampler.rng = SampleRNG(cfg.seed, STREAMS["sampler"])
    train_transform.rng = SampleRNG(cfg.seed, STREAMS["transform"])
    train_set = dataset(train_records, size, train_sampler, train_transform, name="train",
                        seed=mix(cfg.seed, rank, STREAMS["replacement"]), classes=dictionary, decode=mode)

    val_t = cfg.val_clip_length or cfg.clip_length
    val_s = cfg.val_clip_size or cfg.clip_size
    val_sampler = SequentialSampling(num=val_t, interval=cfg.val_frame_interval, shuffle=True, fix_cursor=True,
                                     seed=cfg.seed)
    val_transform = build_transform(spec.augmentation, False, mean, std, channel_order=channel_order)
    val_set = dataset(val_records, (val_t, val_s, val_s), val_sampler, val_transform, name="val", seed=cfg.seed,
                      classes=dictionary, decode=mode)

    batch_sampler = MultigridBatchSampler(len(train_set), (batch, cfg.clip_length, cfg.clip_size), cfg.long_cycles,
                                          cfg.short_cycles, rank=rank, world_size=world_size, seed=cfg.seed,
                                          shuffle=True, drop_last=cfg.drop_last,
                                          clip_warmup=cfg.clip_warmup)
    kwargs = _loader_kwargs(cfg)
    if mode == "deferred":
        kwargs["collate_fn"] = collate_deferred
    train = DataLoader(EpochClips(train_set), batch_sampler=EpochBatches(batch_sampler), generator=torch.Generator(),
                       **kwargs)
    val = DataLoader(val_set, batch_size=cfg.val_batch_size or batch,
                     sampler=ShardSampler(len(val_set), rank, world_size), shuffle=False, drop_last=False, **kwargs)
    logger.info("train: %d videos, %d steps per epoch (per-process base batch %d, long cycles %s, short cycles %s); "
                "val: %d videos of %dx%d² at batch %d", len(train_set), len(batch_sampler), batch, cfg.long_cycles,
                cfg.short_cycles, len(val_set), val_t, val_s, cfg.val_batch_size or batch)
    loaders = Loaders(train, val, train_set, val_set, batch_sampler, spec.num_classes, train_set.labels, batch,
                      cfg.seed, rank, cfg.decode)
    loaders.set_epoch(0)
    return loaders
