"""train/monitor/metric.py: top-k accuracy, sample-weighted loss, last-value meters, reduction at world size 1."""
from __future__ import annotations

import math

import torch

from train.monitor.metric import Accuracy, BatchSize, LearningRate, Loss, MetricList, default_metrics


def test_topk_accuracy_fraction():
    preds = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    labels = torch.tensor([1, 1, 0, 1])
    top1, top2 = Accuracy("top1", 1), Accuracy("top2", 2)
    top1.update(preds, labels)
    top2.update(preds, labels)
    assert top1.get() == ("top1", 0.25)
    assert top2.get() == ("top2", 0.75)


def test_topk_larger_than_classes_is_clipped():
    acc = Accuracy("top5", 5)
    acc.update(torch.randn(3, 2), torch.tensor([0, 1, 1]))
    assert acc.get()[1] == 1.0


def test_nan_before_first_update():
    assert math.isnan(Loss().get()[1]) and math.isnan(Accuracy().get()[1])


def test_sample_weighted_across_batch_sizes():
    # original: unweighted mean of per-batch values -> (1.0 + 0.0) / 2 = 0.5; weighted: 8/(8+2) = 0.8
    acc, loss = Accuracy("top1", 1), Loss()
    big_preds, big_labels = torch.eye(4).repeat(2, 1), torch.arange(4).repeat(2)
    acc.update(big_preds, big_labels)
    loss.update(big_preds, big_labels, torch.tensor(1.0))
    small_preds, small_labels = torch.eye(4)[:2], torch.tensor([3, 3])
    acc.update(small_preds, small_labels)
    loss.update(small_preds, small_labels, torch.tensor(6.0))
    assert acc.get()[1] == 0.8
    assert loss.get()[1] == (8 * 1.0 + 2 * 6.0) / 10


def test_metric_list_names_and_last_values():
    metrics = default_metrics()
    metrics.update(torch.eye(3), torch.arange(3), torch.tensor(0.5), 0.1, (3, 3, 4, 8, 8))
    names = [n for n, _ in metrics.get_name_value()]
    assert names == ["loss-ce", "top1", "top5", "batch_size", "lr"]
    values = metrics.as_dict()
    assert values["batch_size"] == (3, 3, 4, 8, 8) and values["lr"] == 0.1 and values["top1"] == 1.0
    assert metrics.num_samples == 3
    metrics.reset()
    assert metrics.as_dict()["lr"] is None and metrics.num_samples == 0


def test_reduce_is_identity_without_process_group():
    metrics = MetricList(Loss(), Accuracy("top1", 1), BatchSize(), LearningRate())
    metrics.update(torch.eye(2), torch.tensor([0, 0]), torch.tensor(2.0), 0.5, (2, 3, 1, 2, 2))
    before = metrics.as_dict()
    metrics.reduce()
    assert metrics.as_dict() == before
