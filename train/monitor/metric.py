"""Training/validation metrics: :class:`RunningMetrics`, the sums of one pass kept on the device, from which the
speed line's ``loss-ce``, ``top1`` and ``top5`` and the epoch's CSV row are read (:func:`rates`).

Accuracies and the loss are sample-weighted sums (batch sizes vary 32× under multigrid), summed over all ranks
before they are read (docs/differences.md#33). The engine keeps them on the device and reads them on the host
only every ``--log-interval`` steps and at the epoch end (one transfer each): reading a CUDA tensor waits for
every queued kernel, and a step that waits cannot overlap the next one's launch with the GPU's work.
"""
from __future__ import annotations

import math
import time

import torch

from train.distributed import all_reduce_sum, get_world_size

SCORES = ("loss", "top1", "top5", "samples")  # a batch's contribution, kept back until its step is taken
SLOTS = (*SCORES, "nonfinite_rows", "steps", "skipped_steps", "norm_sum", "norms", "skipped_clips")
HEALTH = ("run", "max_run", "first_bad", "first_loss")  # this rank's skipped-step run; not summed over ranks
_STEP = slice(SLOTS.index("steps"), SLOTS.index("norms") + 1)  # steps, skipped_steps, norm_sum, norms


class RunningMetrics:
    """One pass's sums on ``device``: loss·n, top-1 and top-5 hits, scored samples, non-finite rows, optimiser
    steps, skipped steps, the gradient norm before clipping; plus this rank's run of skipped steps.

    A row whose logits are not all finite is never scored (``torch.topk`` ranks NaN first, so it would count as
    a prediction): it counts in ``nonfinite_rows``, and a pass with any such row has top-1 and top-5 NaN.
    Training scores a micro-batch as ``pending`` and :meth:`commit` keeps or drops it when its optimiser step is
    taken or skipped. Nothing here waits for the device; :meth:`read` is the one host transfer. ``carried``:
    the summed values of the steps before a mid-epoch resume (added on the host to every full read); ``run``:
    the skipped steps in a row at the end of the previous epoch (a device tensor).
    """

    def __init__(self, device: torch.device | str, carried: dict[str, float] | None = None, topk: int = 5,
                 run: torch.Tensor | None = None) -> None:
        self.device, self.topk = torch.device(device), topk
        self.sums = torch.zeros(len(SLOTS), dtype=torch.float64, device=self.device)
        self.pending = torch.zeros(len(SCORES), dtype=torch.float64, device=self.device)
        self.health = torch.tensor([0.0, 0.0, -1.0, 0.0], dtype=torch.float64, device=self.device)
        if run is not None:  # the previous epoch's skipped steps in a row continue
            self.health[0] = run
        self.carried = {k: float((carried or {}).get(k, 0.0)) for k in SLOTS}
        self.started = time.perf_counter() - float((carried or {}).get("seconds", 0.0))
        self.last = dict.fromkeys(SLOTS, 0.0)  # device sums at the last interval read (without ``carried``)

    def score(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor, pending: bool = False) -> None:
        """Add a batch: ``logits`` (B, K), ``target`` (B,) class indices, ``loss`` its mean (0-d) or per-row
        losses (B,); ``pending``: held until :meth:`commit`."""
        logits, loss = logits.detach().float(), loss.detach().double()
        finite = torch.isfinite(logits).all(dim=1)
        top = logits.topk(min(self.topk, logits.shape[1]), dim=1).indices
        hits = (top == target.view(-1, 1)) & finite.view(-1, 1)
        loss_sum = torch.where(finite, loss, 0.0).sum() if loss.dim() else loss * logits.shape[0]
        scores = torch.stack([loss_sum, hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                              finite.sum().double()])
        (self.pending if pending else self.sums[:len(SCORES)]).add_(scores)
        self.sums[SLOTS.index("nonfinite_rows")] += (~finite).sum()

    def commit(self, ok: torch.Tensor, norm: torch.Tensor | None, step: int) -> None:
        """The optimiser step of the pending batches was taken (``ok``, a 0-d bool) or skipped; ``norm``: the
        gradients' total norm before clipping (None when not clipping); ``step``: its index in the epoch."""
        bad = (~ok).double()
        self.sums[:len(SCORES)] += torch.where(ok, self.pending, 0.0)
        norm = torch.zeros((), dtype=torch.float64, device=self.device) if norm is None else norm.double()
        counted = torch.isfinite(norm) & (norm > 0)
        self.sums[_STEP] += torch.stack(
            [torch.ones_like(bad), bad, torch.where(counted, norm, 0.0), counted.double()])
        run = (self.health[0] + 1) * bad
        first = (self.health[2] < 0) & (bad > 0)
        self.health.copy_(torch.stack([run, torch.maximum(self.health[1], run),
                                       torch.where(first, float(step), self.health[2]),
                                       torch.where(first, self.pending[0] / self.pending[3], self.health[3])]))
        self.pending.zero_()

    def read(self, reduce: bool, full: bool = False, skipped_clips: int = 0) -> dict[str, float]:
        """The sums since the last interval read (``full``: of the whole pass, ``carried`` included) and this
        rank's run of skipped steps, in one host transfer. ``reduce``: summed over all ranks first (a collective:
        every rank calls it at the same step). ``skipped_clips``: this rank's corrupt clips, counted with them."""
        sums = self.sums.clone()
        sums[SLOTS.index("skipped_clips")] = float(skipped_clips)
        if reduce:
            sums = all_reduce_sum(sums)
            sums[_STEP] /= get_world_size()  # the ranks step together (all-reduced gradients): count each step once
        now = dict(zip(SLOTS + HEALTH, torch.cat([sums, self.health]).tolist()))
        base = self.carried if full else self.last
        out = {k: now[k] + base[k] if full else now[k] - base[k] for k in SLOTS}
        if not full:
            self.last = {k: now[k] for k in SLOTS}
        return {**out, **{k: now[k] for k in HEALTH}}

    def seconds(self) -> float:
        """Seconds of the pass so far (those before a resume included)."""
        return time.perf_counter() - self.started


def rates(sums: dict[str, float]) -> dict[str, float]:
    """``loss-ce``, ``top1``, ``top5`` of :meth:`RunningMetrics.read` sums (NaN with no sample, or any
    non-finite row), and ``grad_norm`` (the mean norm before clipping; NaN when none was measured)."""
    n = sums["samples"]
    valid = n > 0 and not sums["nonfinite_rows"]
    return {"loss-ce": sums["loss"] / n if n else math.nan, "top1": sums["top1"] / n if valid else math.nan,
            "top5": sums["top5"] / n if valid else math.nan,
            "grad_norm": sums["norm_sum"] / sums["norms"] if sums["norms"] else math.nan}
