"""Multigrid long/short cycles (Wu et al., "A Multigrid Method for Efficiently Training Video Models",
https://arxiv.org/abs/1912.00998) as pure schedule functions, plus the batch sampler that applies them.

A training step uses a batch of ``B`` clips of ``T`` frames and ``S x S`` pixels. From the base shape
``(B, T, S)`` (``--batch-size``, ``--clip-length``, ``--clip-size``):

* the **long cycle** splits the epoch into four stages, each a quarter of the samples, with
  ``(8B, T//4, S//√2)``, ``(4B, T//2, S//√2)``, ``(2B, T//2, S)``, ``(B, T, S)``;
* the **short cycle** cycles over iterations ``i mod 3`` with ``(×1, side)``, ``(×2, side//√2)``,
  ``(×4, side//2)`` on top of the long-cycle shape;
* odd sides are increased by 1 (after both cycles), frames and sides never go below 1 / 2.

These are the original's numbers and integer rounding. Where the original was wrong we differ:
original did an "epoch" of ≈50 % of the data at these shapes (an iteration count derived from ⌊N/B⌋ with an
if/else slip, crashing below 60·B videos); the paper's schedule is over the data; we plan each epoch so
that every (per-rank) sample is used exactly once at the scheduled batch sizes, with the long-cycle stages
by quarters of the samples. The original also applied both cycles when either flag was on; here each flag is
independent. A stage's last step takes the rest of that stage (a batch smaller than scheduled is kept,
explicitly), so data sets smaller than one batch still train.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

SQRT2 = math.sqrt(2.0)

# (batch ×, frames ÷, side ÷) per long-cycle stage; divisors (not multipliers) so that the rounding is the
# original's exact ``T // 4`` and ``int(S // √2)``.
LONG_CYCLE: tuple[tuple[int, int, float], ...] = ((8, 4, SQRT2), (4, 2, SQRT2), (2, 2, 1.0), (1, 1, 1.0))
# (batch ×, side ÷) per short-cycle step (iteration ``i mod 3``).
SHORT_CYCLE: tuple[tuple[int, float], ...] = ((1, 1.0), (2, SQRT2), (4, 2.0))


class StepShape(tuple):
    """One iteration's ``(B, T, S)``: compares/unpacks as a plain 3-tuple and remembers its cycle stages.

    ``long_stage`` is 0..3 (``None`` without long cycles), ``short_step`` 0..2 (``None`` without short
    cycles). The batch alone cannot tell the stage (``8B×1 == 4B×2``), which is why the learning-rate
    scaling (`train.engine.lr_scheduler.multigrid_scale`) reads it here.
    """

    long_stage: int | None
    short_step: int | None

    def __new__(cls, batch: int, frames: int, side: int, long_stage: int | None = None,
                short_step: int | None = None) -> StepShape:
        self = super().__new__(cls, (int(batch), int(frames), int(side)))
        self.long_stage = long_stage
        self.short_step = short_step
        return self

    def __getnewargs__(self) -> tuple:
        return (*self, self.long_stage, self.short_step)

    def __repr__(self) -> str:
        return f"StepShape{tuple(self)!r}(long={self.long_stage}, short={self.short_step})"

    @property
    def batch(self) -> int:
        return self[0]

    @property
    def frames(self) -> int:
        return self[1]

    @property
    def side(self) -> int:
        return self[2]

    def with_batch(self, batch: int) -> StepShape:
        """The same step with another batch size (a capped last batch)."""
        return StepShape(batch, self[1], self[2], self.long_stage, self.short_step)


def _check_base(base: Sequence[int]) -> tuple[int, int, int]:
    if len(base) != 3 or any(int(v) != v or v < 1 for v in base):
        raise ValueError(f"base shape must be three positive ints (batch, clip length, clip size), got {base!r}")
    return int(base[0]), int(base[1]), int(base[2])


def step_shape(base: Sequence[int], long_stage: int | None, short_step: int | None) -> StepShape:
    """``(B, T, S)`` of a step in long-cycle stage ``long_stage`` (0..3 or None) and short step (0..2 or None).

    >>> tuple(step_shape((48, 16, 284), 0, 1))
    (768, 4, 142)
    """
    batch, frames, side = _check_base(base)
    if long_stage is not None:
        if not 0 <= long_stage < len(LONG_CYCLE):
            raise ValueError(f"long_stage must be 0..{len(LONG_CYCLE) - 1} or None, got {long_stage}")
        b_mult, t_div, s_div = LONG_CYCLE[long_stage]
        batch, frames, side = batch * b_mult, frames // t_div, int(side // s_div)
    if short_step is not None:
        if not 0 <= short_step < len(SHORT_CYCLE):
            raise ValueError(f"short_step must be 0..{len(SHORT_CYCLE) - 1} or None, got {short_step}")
        b_mult, s_div = SHORT_CYCLE[short_step]
        batch, side = batch * b_mult, int(side // s_div)
    # Original: odd sides +1 (h, w rounded up to even). Tiny clips never reach zero frames or pixels.
    side = max(2, side + side % 2)
    return StepShape(batch, max(1, frames), side, long_stage, short_step)


def stage_sizes(num_samples: int, long_cycles: bool) -> list[int]:
    """Samples per long-cycle stage: four quarters (``N*(k+1)//4 - N*k//4``), or ``[N]`` without long cycles."""
    if not long_cycles:
        return [num_samples]
    n_stages = len(LONG_CYCLE)
    return [num_samples * (k + 1) // n_stages - num_samples * k // n_stages for k in range(n_stages)]


def plan_epoch(num_samples: int, base: Sequence[int], long_cycles: bool, short_cycles: bool) -> list[StepShape]:
    """The shapes of every iteration of one epoch over ``num_samples`` samples (one rank's share).

    The batch sizes sum to ``num_samples``: each sample is used exactly once. Short steps follow the in-epoch
    iteration index ``i mod 3`` across stages (as the original); a stage's last batch holds what is left of
    its quarter (possibly fewer clips than scheduled). Depends only on its arguments, so every epoch and
    every rank has the same plan.
    """
    if num_samples < 1:
        raise ValueError(f"cannot plan an epoch over {num_samples} samples (is the training set empty?)")
    plan: list[StepShape] = []
    for stage, size in enumerate(stage_sizes(num_samples, long_cycles)):
        remaining = size
        while remaining > 0:
            short = len(plan) % len(SHORT_CYCLE) if short_cycles else None
            shape = step_shape(base, stage if long_cycles else None, short)
            take = min(shape.batch, remaining)
            plan.append(shape if take == shape.batch else shape.with_batch(take))
            remaining -= take
    return plan


def shard_size(num_samples: int, world_size: int, drop_last: bool) -> int:
    """Samples per rank: ``N // W`` with ``drop_last`` (leftovers skipped), else ``ceil(N / W)`` (padded)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return num_samples // world_size if drop_last else -(-num_samples // world_size)


class MultigridBatchSampler:
    """Batch sampler yielding lists of ``(idx, T, S)`` following ``plan_epoch`` (one DataLoader for all shapes).

    The order is a permutation drawn from ``(seed, epoch)`` (identity when ``shuffle`` is False) and split
    round-robin over ranks, so indices are disjoint across ranks and every rank runs the same plan (same step
    count and shapes, as DDP needs). ``drop_last`` decides the ``N mod W`` leftover samples: True skips them
    this epoch, False pads every rank to ``ceil(N/W)`` by reusing the first samples of the permutation (as
    ``torch.utils.data.DistributedSampler``); at world size 1 nothing is dropped or repeated. Without cycles
    it still yields ``(idx, T, S)`` at the base shape.

    ``clip_warmup = (E, T_w, S_w)``: the first ``E`` epochs (0-based epochs ``< E``) plan with ``T_w`` frames of
    side ``S_w`` in place of the base clip (the clip-length warm-up, ``--clip-warmup-epochs``); batch sizes and
    step counts do not change, so neither do the lr schedule and the resume positions.
    """

    def __init__(self, num_samples: int, base: Sequence[int], long_cycles: bool, short_cycles: bool,
                 rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, clip_warmup: tuple[int, int, int] = (0, 0, 0)) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.num_samples = int(num_samples)
        self.base = _check_base(base)
        self.long_cycles, self.short_cycles = bool(long_cycles), bool(short_cycles)
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle, self.drop_last = int(seed), bool(shuffle), bool(drop_last)
        self.epoch, self.start = 0, 0
        per_rank = shard_size(self.num_samples, world_size, self.drop_last)
        if per_rank < 1:
            raise ValueError(f"{self.num_samples} training samples cannot be split over {world_size} ranks with "
                             "drop_last=True; use fewer processes or drop_last=False")
        self.samples_per_rank = per_rank
        warmup_epochs, warmup_frames, warmup_side = (int(v) for v in clip_warmup)
        if warmup_epochs < 0 or (warmup_epochs and min(warmup_frames, warmup_side) < 1):
            raise ValueError(f"clip_warmup must be (epochs >= 0, frames >= 1, side >= 1), got {clip_warmup!r}")
        self.clip_warmup = (warmup_epochs, warmup_frames, warmup_side)
        self._plans: dict[tuple[int, int, int], list[StepShape]] = {}
        self.plan = self.plan_for(0)

    def _plan(self, base: tuple[int, int, int]) -> list[StepShape]:
        if base not in self._plans:
            self._plans[base] = plan_epoch(self.samples_per_rank, base, self.long_cycles, self.short_cycles)
        return self._plans[base]

    def plan_for(self, epoch: int) -> list[StepShape]:
        """The shapes of 0-based ``epoch``'s iterations: the warm-up clip length in the first epochs."""
        warmup_epochs, warmup_frames, warmup_side = self.clip_warmup
        return self._plan((self.base[0], warmup_frames, warmup_side) if epoch < warmup_epochs else self.base)

    @property
    def current_plan(self) -> list[StepShape]:
        """The shapes of this epoch's iterations (the same on every rank; every epoch has as many steps)."""
        return self.plan

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the permutation and plan of ``epoch`` (call before iterating, as with DistributedSampler) and
        skip its first ``start`` steps (a resume from a mid-epoch checkpoint: the remaining clips, each once)."""
        plan = self.plan_for(int(epoch))
        if not 0 <= int(start) <= len(plan):
            raise ValueError(f"start step {start} is outside the epoch's {len(plan)} steps")
        self.epoch, self.start, self.plan = int(epoch), int(start), plan

    def rank_indices(self) -> list[int]:
        """This rank's sample indices for the current epoch, in the order they are batched."""
        n, per_rank = self.num_samples, self.samples_per_rank
        if self.shuffle:
            order = np.random.default_rng([self.seed % 2**32, self.epoch]).permutation(n)
        else:
            order = np.arange(n)
        total = per_rank * self.world_size
        if total > n:
            order = np.resize(order, total)  # pads by cycling from the start of the permutation
        return order[self.rank:total:self.world_size].tolist()

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        indices = self.rank_indices()
        offset = sum(shape[0] for shape in self.plan[:self.start])
        for batch, frames, side in self.plan[self.start:]:
            yield [(idx, frames, side) for idx in indices[offset:offset + batch]]
            offset += batch

    def __len__(self) -> int:
        """Steps left in the epoch (all of them unless ``set_epoch`` was given a start)."""
        return len(self.plan) - self.start
