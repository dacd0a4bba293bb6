"""Training targets: label smoothing, and mixup / cutmix of pairs of clips with soft targets.

``--label-smoothing ε`` turns label ``y`` of ``K`` classes into the distribution ``1-ε+ε/K`` on ``y`` and ``ε/K``
elsewhere. ``--mixup-alpha`` / ``--cutmix-alpha`` mix clip ``i`` of a batch with clip ``B-1-i`` (its pair): one
``λ ~ Beta(α, α)`` per pair, mixup blends the two clips ``λ·x_i + (1-λ)·x_j``, cutmix pastes one box of ``x_j``
into ``x_i`` (and the same box of ``x_i`` into ``x_j``) on every frame of the clip, so a pasted object does not
move in time; its ``λ`` is the area left unpasted, exactly. The targets are mixed with the same ``λ``. A batch is
mixed with probability ``--mix-prob``; with both alphas on, a mixed batch uses mixup or cutmix with equal odds.

Every draw comes from the ``mixing`` stream of `data.pipeline.rng` seeded by ``(--random-seed, rank, epoch,
step)``, so it holds no state: a run resumed mid-epoch draws what the uninterrupted run drew. Draws are made
on the host and copied to the device without waiting for it (no host sync per step).

Training top-1 under mixing counts a clip as correct when the prediction is the label with the larger weight in
its target (its own label when ``λ >= 0.5``): :func:`hard_labels`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data.pipeline.rng import STREAMS, mix


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """``(B,)`` class indices → ``(B, K)`` float32 distributions, label-smoothed by ``smoothing``."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    return out.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """The class each clip counts as for top-1: the index itself, or the heaviest class of a soft target."""
    return targets.argmax(1) if targets.ndim == 2 else targets


def pair_lambdas(lam: np.ndarray, batch: int) -> np.ndarray:
    """Per-pair values ``(B // 2,)`` spread to every clip ``(B,)``: clips ``i`` and ``B-1-i`` share one; the middle
    clip of an odd batch is its own pair (value 1: unmixed)."""
    out = np.ones(batch, dtype=np.float64)
    half = batch // 2
    out[:half] = lam[:half]
    out[batch - half:] = lam[:half][::-1]
    return out


@dataclass(frozen=True)
class MixDraw:
    """The random choices of one batch: ``kind`` ('none', 'mixup', 'cutmix'), per-clip ``lam`` (B,), and for
    cutmix per-clip boxes ``(top, left, height, width)`` (B, 4), the same for both clips of a pair."""

    kind: str
    lam: np.ndarray
    boxes: np.ndarray | None = None


def draw(rng: np.random.Generator, batch: int, height: int, width: int, mixup_alpha: float, cutmix_alpha: float,
         mix_prob: float) -> MixDraw:
    """One batch's mixing choices (see the module docstring)."""
    pairs = batch // 2
    none = MixDraw("none", np.ones(batch))
    if pairs == 0 or not (mixup_alpha > 0 or cutmix_alpha > 0) or rng.random() >= mix_prob:
        return none
    cut = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    lam = rng.beta(cutmix_alpha if cut else mixup_alpha, cutmix_alpha if cut else mixup_alpha, size=pairs)
    if not cut:
        return MixDraw("mixup", pair_lambdas(lam, batch))
    side = np.sqrt(1.0 - lam)
    h = np.rint(side * height).astype(np.int64)
    w = np.rint(side * width).astype(np.int64)
    top = np.floor(rng.random(pairs) * (height - h + 1)).astype(np.int64)
    left = np.floor(rng.random(pairs) * (width - w + 1)).astype(np.int64)
    kept = 1.0 - (h * w) / float(height * width)  # the exact share of the clip left unpasted
    boxes = np.zeros((batch, 4), dtype=np.int64)
    half = np.stack([top, left, h, w], axis=1)
    boxes[:pairs] = half
    boxes[batch - pairs:] = half[::-1]
    return MixDraw("cutmix", pair_lambdas(kept, batch), boxes)


def _to(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array on ``device`` without blocking the host (pinned, asynchronous copy on CUDA)."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, 4)`` boxes ``(top, left, h, w)`` → ``(B, 1, 1, H, W)`` bool masks, True inside (over all frames)."""
    ys = torch.arange(height, device=boxes.device)
    xs = torch.arange(width, device=boxes.device)
    rows = (ys >= boxes[:, :1]) & (ys < boxes[:, :1] + boxes[:, 2:3])
    cols = (xs >= boxes[:, 1:2]) & (xs < boxes[:, 1:2] + boxes[:, 3:4])
    return (rows[:, :, None] & cols[:, None, :])[:, None, None]


def apply_mix(data: torch.Tensor, targets: torch.Tensor, d: MixDraw) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix clips ``(B, C, T, H, W)`` and soft targets ``(B, K)`` with clip ``B-1-i`` as ``d`` says."""
    if d.kind == "none":
        return data, targets
    lam = _to(d.lam.astype(np.float32), data.device)
    if d.kind == "mixup":
        w = lam.to(data.dtype).view(-1, 1, 1, 1, 1)
        data = data * w + data.flip(0) * (1 - w)
    else:
        mask = box_mask(_to(d.boxes, data.device), data.shape[-2], data.shape[-1])
        data = torch.where(mask, data.flip(0), data)
    lam = lam.view(-1, 1)
    return data, targets * lam + targets.flip(0) * (1 - lam)


@dataclass(frozen=True)
class TargetTransform:
    """The training batch transform before the forward: ``(clips, labels) → (clips, targets)``.

    Off (no smoothing, no mixing) it returns its input unchanged, so the loss is the original cross-entropy of
    class indices; on, the targets are ``(B, K)`` distributions for ``nn.CrossEntropyLoss``.
    """

    num_classes: int
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    seed: int = 1
    rank: int = 0

    @classmethod
    def from_config(cls, cfg: object, num_classes: int, rank: int) -> TargetTransform:
        """From a `train.config.RunConfig` (its ``reg`` group and ``--random-seed``)."""
        r = cfg.reg
        return cls(num_classes, r.label_smoothing, r.mixup_alpha, r.cutmix_alpha, r.mix_prob,
                   cfg.optim.random_seed, rank)

    @property
    def mixing(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_prob > 0

    @property
    def enabled(self) -> bool:
        return self.mixing or self.label_smoothing > 0

    def check_pairs(self, batch_per_process: int) -> None:
        """Mixing pairs clips inside one process's batch: refuse a run whose batch per process is 1, which would
        never mix (an odd batch leaves its middle clip unmixed, and the last, smaller batch of an epoch may too)."""
        if self.mixing and batch_per_process < 2:
            raise ValueError(f"--mixup-alpha/--cutmix-alpha mix pairs of clips within each process's batch, but this "
                             f"run's batch per process is {batch_per_process}: raise --batch-size or use fewer --gpus")

    def rng(self, epoch: int, step: int) -> np.random.Generator:
        """The ``mixing`` stream of step ``step`` of 0-based ``epoch`` on this rank."""
        return np.random.default_rng(mix(self.seed, STREAMS["mixing"], self.rank, epoch, step))

    def __call__(self, data: torch.Tensor, labels: torch.Tensor, epoch: int,
                 step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.enabled:
            return data, labels
        targets = soft_targets(labels, self.num_classes, self.label_smoothing)
        if not self.mixing:
            return data, targets
        d = draw(self.rng(epoch, step), data.shape[0], data.shape[-2], data.shape[-1], self.mixup_alpha,
                 self.cutmix_alpha, self.mix_prob)
        return apply_mix(data, targets, d)
