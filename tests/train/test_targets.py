"""train/engine/targets.py: label smoothing, clip-consistent mixup/cutmix with soft targets, seeded draws."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from train.engine.targets import MixDraw, TargetTransform, apply_mix, draw, hard_labels, soft_targets

K = 5


def _batch(b: int = 4, t: int = 3, h: int = 8, w: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip i is constant i + 1 everywhere, so the source of every pixel of a mixed clip can be read back."""
    data = torch.arange(1, b + 1, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 3, t, h, w).contiguous()
    return data, torch.tensor([0, 1, 2, 3, 4, 0][:b])


def test_smoothing_values():
    t = soft_targets(torch.tensor([2, 0]), K, 0.1)
    assert t[0].tolist() == pytest.approx([0.02, 0.02, 0.92, 0.02, 0.02])
    assert t[1, 0].item() == pytest.approx(0.92)
    torch.testing.assert_close(t.sum(1), torch.ones(2))
    assert torch.equal(soft_targets(torch.tensor([3]), K), nn.functional.one_hot(torch.tensor([3]), K).float())


def test_smoothed_loss_equals_torch_label_smoothing():
    logits, labels = torch.randn(6, K, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 4, 0])
    ours = nn.CrossEntropyLoss()(logits, soft_targets(labels, K, 0.2))
    torch.testing.assert_close(ours, nn.CrossEntropyLoss(label_smoothing=0.2)(logits, labels))


def test_cutmix_box_is_the_same_over_frames_and_lambda_is_the_kept_area():
    data, labels = _batch(b=5)
    rng = np.random.default_rng(3)
    d = draw(rng, 5, 8, 6, mixup_alpha=0.0, cutmix_alpha=1.0, mix_prob=1.0)
    assert d.kind == "cutmix" and (d.boxes[0] == d.boxes[4]).all() and (d.boxes[1] == d.boxes[3]).all()
    mixed, targets = apply_mix(data, soft_targets(labels, K, 0.1), d)
    for i in (0, 1, 3, 4):  # clip 2, the middle of an odd batch, has no pair
        j = 4 - i
        pasted = mixed[i] == j + 1
        assert torch.equal(pasted, pasted[:1, :1].expand_as(pasted))  # one box over every channel and frame
        kept = 1.0 - pasted[0, 0].float().mean().item()
        assert d.lam[i] == pytest.approx(kept)
        top, left, h, w = d.boxes[i]
        assert pasted[0, 0, top:top + h, left:left + w].all() and pasted[0, 0].sum() == h * w
        want = kept * soft_targets(labels[i:i + 1], K, 0.1) + (1 - kept) * soft_targets(labels[j:j + 1], K, 0.1)
        torch.testing.assert_close(targets[i:i + 1], want)
    assert d.lam[2] == 1.0 and torch.equal(mixed[2], data[2])  # the middle clip of an odd batch is unmixed
    torch.testing.assert_close(targets.sum(1), torch.ones(5))


def test_mixup_blends_each_pair_with_one_lambda():
    data, labels = _batch()
    d = draw(np.random.default_rng(0), 4, 8, 6, mixup_alpha=0.4, cutmix_alpha=0.0, mix_prob=1.0)
    assert d.kind == "mixup" and d.lam[0] == d.lam[3] and d.lam[1] == d.lam[2] and d.lam[0] != d.lam[1]
    mixed, targets = apply_mix(data, soft_targets(labels, K), d)
    for i in range(4):
        lam = float(d.lam[i])
        assert torch.allclose(mixed[i], torch.full_like(mixed[i], lam * (i + 1) + (1 - lam) * (4 - i)))
        assert targets[i, labels[i]].item() == pytest.approx(lam)
        assert targets[i, labels[3 - i]].item() == pytest.approx(1 - lam, abs=1e-6)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))


def test_mix_prob_and_the_choice_between_mixup_and_cutmix():
    rng = np.random.default_rng(0)
    kinds = [draw(rng, 4, 8, 8, 0.2, 1.0, 0.5).kind for _ in range(2000)]
    share = {k: kinds.count(k) / len(kinds) for k in ("none", "mixup", "cutmix")}
    assert share["none"] == pytest.approx(0.5, abs=0.05) and share["mixup"] == pytest.approx(0.25, abs=0.05)
    assert {draw(rng, 4, 8, 8, 0.2, 0.0, 0.0).kind for _ in range(50)} == {"none"}
    assert draw(rng, 1, 8, 8, 1.0, 1.0, 1.0).kind == "none"  # a one-clip batch has no pair


def test_transform_is_identity_when_off_and_seeded_per_step():
    data, labels = _batch()
    off = TargetTransform(K)
    assert off(data, labels, 0, 0) == (data, labels) and not off.enabled
    on = TargetTransform(K, label_smoothing=0.1, mixup_alpha=1.0, cutmix_alpha=1.0, seed=7)
    a = on(data, labels, epoch=2, step=5)
    b = TargetTransform(K, label_smoothing=0.1, mixup_alpha=1.0, cutmix_alpha=1.0, seed=7)(data, labels, 2, 5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # a resumed run draws the same at the same step
    others = [on(data, labels, 2, s)[1] for s in range(6, 12)]
    assert any(not torch.equal(a[1], o) for o in others)
    other_rank = TargetTransform(K, 0.1, 1.0, 1.0, seed=7, rank=1)
    assert any(not torch.equal(on(data, labels, 3, s)[1], other_rank(data, labels, 3, s)[1]) for s in range(6))


def test_hard_labels_count_the_heavier_label():
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.0, 0.8]])
    assert hard_labels(targets).tolist() == [0, 2]
    assert hard_labels(torch.tensor([1, 2])).tolist() == [1, 2]


def test_no_mix_draw_leaves_the_batch():
    data, labels = _batch()
    t = soft_targets(labels, K)
    assert apply_mix(data, t, MixDraw("none", np.ones(4))) == (data, t)


def test_a_batch_of_one_clip_per_process_is_refused_when_mixing():
    TargetTransform(K, label_smoothing=0.1).check_pairs(1)  # smoothing alone needs no pairs
    TargetTransform(K, mixup_alpha=0.2).check_pairs(2)
    with pytest.raises(ValueError, match="batch per process is 1: raise --batch-size or use fewer --gpus"):
        TargetTransform(K, cutmix_alpha=1.0).check_pairs(1)
