"""train/monitor/metric.py: the device sums of a pass (top-k accuracy, sample-weighted loss, non-finite rows,
pending scores of a skipped step, interval reads, carried sums, steps counted once over the ranks)."""
from __future__ import annotations

import math

import torch

from train.monitor.metric import RunningMetrics, rates

# --- RunningMetrics: one pass's sums on the device ------------------------------------------------------------------

def _logits(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_running_sums_give_topk_accuracy_and_the_loss():
    meter = RunningMetrics("cpu", topk=2)
    preds = _logits([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    meter.score(preds, torch.tensor([1, 1, 0, 1]), torch.tensor(2.0))
    values = rates(meter.read(reduce=False, full=True))
    assert values["top1"] == 0.25 and values["top5"] == 0.75  # top-2 here
    assert values["loss-ce"] == 2.0 and math.isnan(values["grad_norm"])


def test_topk_larger_than_classes_is_clipped_and_nothing_is_read_before_a_sample():
    meter = RunningMetrics("cpu")
    assert all(math.isnan(v) for v in rates(meter.read(reduce=False, full=True)).values())
    meter.score(torch.randn(3, 2), torch.tensor([0, 1, 1]), torch.tensor(1.0))
    assert rates(meter.read(reduce=False, full=True))["top5"] == 1.0


def test_sums_are_sample_weighted_across_batch_sizes():
    # the original averaged per-batch values: (1.0 + 0.0) / 2 = 0.5; weighted by samples: 8 / (8 + 2) = 0.8
    meter = RunningMetrics("cpu")
    meter.score(torch.eye(4).repeat(2, 1), torch.arange(4).repeat(2), torch.tensor(1.0))
    meter.score(torch.eye(4)[:2], torch.tensor([3, 3]), torch.tensor(6.0))
    values = rates(meter.read(reduce=False, full=True))
    assert values["top1"] == 0.8 and values["loss-ce"] == (8 * 1.0 + 2 * 6.0) / 10


def test_nan_rows_are_not_predictions_and_make_the_accuracy_nan():
    """torch.topk ranks NaN first: a NaN row would otherwise count as a hit for class 0."""
    meter = RunningMetrics("cpu")
    logits = _logits([[float("nan")] * 3, [0.0, 1.0, 0.0], [float("inf"), 0.0, 0.0]])
    per_row = torch.tensor([float("nan"), 0.5, float("nan")])
    meter.score(logits, torch.tensor([0, 1, 0]), per_row)
    sums = meter.read(reduce=False, full=True)
    assert sums["nonfinite_rows"] == 2 and sums["samples"] == 1 and sums["top1"] == 1 and sums["loss"] == 0.5
    values = rates(sums)
    assert math.isnan(values["top1"]) and math.isnan(values["top5"]) and values["loss-ce"] == 0.5


def test_pending_scores_are_kept_or_dropped_with_their_optimiser_step():
    meter = RunningMetrics("cpu")
    good, label = _logits([[0.0, 1.0]]), torch.tensor([1])
    meter.score(good, label, torch.tensor(1.0), pending=True)
    meter.commit(torch.tensor(True), torch.tensor(3.0), step=0)
    meter.score(good, label, torch.tensor(float("inf")), pending=True)
    meter.commit(torch.tensor(False), torch.tensor(float("nan")), step=1)  # skipped: its scores are dropped
    meter.score(good, label, torch.tensor(2.0), pending=True)
    meter.commit(torch.tensor(False), None, step=2)
    sums = meter.read(reduce=False, full=True)
    assert (sums["samples"], sums["loss"], sums["steps"], sums["skipped_steps"]) == (1, 1.0, 3, 2)
    assert (sums["max_run"], sums["first_bad"], sums["first_loss"]) == (2, 1, float("inf"))
    assert rates(sums)["grad_norm"] == 3.0  # non-finite norms are not averaged


def test_interval_reads_are_differences_and_carried_sums_count_in_full_reads():
    meter = RunningMetrics("cpu", carried={"samples": 6, "loss": 12.0, "top1": 3, "top5": 6, "seconds": 5.0})
    one = _logits([[0.0, 1.0]])
    meter.score(one, torch.tensor([1]), torch.tensor(1.0))
    assert meter.read(reduce=False)["samples"] == 1
    meter.score(one, torch.tensor([0]), torch.tensor(3.0))
    interval = meter.read(reduce=False)
    assert (interval["samples"], interval["loss"], interval["top1"]) == (1, 3.0, 0)
    full = meter.read(reduce=False, full=True, skipped_clips=2)
    assert (full["samples"], full["loss"], full["top1"], full["skipped_clips"]) == (8, 16.0, 4, 2)
    assert meter.seconds() >= 5.0


def test_a_run_of_skipped_steps_continues_into_the_next_epoch():
    last = RunningMetrics("cpu")
    for step in range(3):
        last.commit(torch.tensor(False), None, step)
    meter = RunningMetrics("cpu", run=last.health[0])
    meter.commit(torch.tensor(False), None, 0)
    assert meter.read(reduce=False)["max_run"] == 4


def test_optimiser_steps_are_counted_once_over_the_ranks(monkeypatch):
    """Under DDP every rank takes (or the fp16 scaler skips) the same optimiser step: summing the ranks' counts
    reported one skipped step as N on N processes. Two identical ranks are simulated by a doubling all-reduce."""
    from train.monitor import metric

    monkeypatch.setattr(metric, "all_reduce_sum", lambda values: values * 2)
    monkeypatch.setattr(metric, "get_world_size", lambda: 2)
    meter = RunningMetrics("cpu")
    for ok, norm in ((True, 2.0), (False, float("inf")), (True, 4.0)):
        meter.score(torch.eye(3), torch.arange(3), torch.tensor(0.5), pending=True)
        meter.commit(torch.tensor(ok), torch.tensor(norm), 0)
    sums = meter.read(reduce=True, full=True)
    assert (sums["steps"], sums["skipped_steps"], sums["samples"]) == (3, 1, 12)
    assert sums["norm_sum"] / sums["norms"] == 3.0
