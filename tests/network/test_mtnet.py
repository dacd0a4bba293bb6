"""MTNet parts and whole models: frame selection, GRU gates, MTConv splits, shapes, gradients, input limits."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from network import create_model
from network.mtconv import MTConv, RecurrentAlignment, temporal_cossim_pool
from network.mtnet import MIN_FRAMES, MIN_SPATIAL, MTBlock


def _frames(angles_deg: list[float], scales: list[float]) -> torch.Tensor:
    """(C=2, T, 2, 2): frame t is the unit vector at angle t (times a positive scale) plus a zero-mean
    spatial pattern, so its spatial mean points exactly at that angle."""
    rad = torch.tensor(angles_deg) * math.pi / 180
    vec = torch.stack([rad.cos(), rad.sin()]) * torch.tensor(scales)  # (2, T)
    pattern = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    return vec[:, :, None, None] + 0.3 * pattern


def test_temporal_cossim_pool_keeps_centres_of_most_similar_triplets() -> None:
    # Pair angle gaps 180,180,60,30,60,10 → squared cosines 1,1,.25,.75,.25,.97 → triplet scores for centres
    # 1..5: 1, .625, .5, .5, .61 → the 3 best centres are 1, 2, 5. Anti-parallel frames count as similar
    # (squared cosine); an unsquared cosine would pick 3, 4, 5 instead.
    angles = [0, 180, 0, 60, 90, 150, 160]
    first = _frames(angles, [1, 2, 0.5, 3, 1, 1, 4])
    second = _frames(angles[::-1], [1, 1, 1, 1, 1, 1, 1])  # time-reversed: centres 6 - c → 1, 4, 5
    x = torch.stack([first, second])  # (B=2, C=2, T=7, H=2, W=2)
    out = temporal_cossim_pool(x)
    assert out.shape == (2, 2, 3, 2, 2)
    torch.testing.assert_close(out[0], x[0, :, [1, 2, 5]], rtol=0, atol=0)
    torch.testing.assert_close(out[1], x[1, :, [1, 4, 5]], rtol=0, atol=0)


def test_temporal_cossim_pool_edge_cases() -> None:
    assert temporal_cossim_pool(torch.zeros(1, 4, 5, 3, 3)).abs().sum() == 0  # eps keeps zeros finite
    assert temporal_cossim_pool(torch.randn(2, 3, 16, 2, 1)).shape == (2, 3, 8, 2, 1)
    with pytest.raises(ValueError, match="at least 3 frames"):
        temporal_cossim_pool(torch.randn(1, 4, 2, 3, 3))


def test_recurrent_alignment_is_x_times_gru_of_spatial_means() -> None:
    torch.manual_seed(0)
    block = RecurrentAlignment(6)
    x = torch.randn(2, 6, 5, 1, 3)  # H = 1 < W: the original squeezed the wrong dims here and crashed
    r, _ = block.op(x.mean(dim=(3, 4)).permute(2, 0, 1))
    torch.testing.assert_close(block(x), x * r.permute(1, 2, 0)[..., None, None])
    assert [name for name, _ in block.named_parameters()][:2] == ["op.weight_ih_l0", "op.weight_hh_l0"]


@pytest.mark.parametrize("groups, expected", [
    (1, {"conv_short": (56, 56), "conv_long": (8, 8), "norms": nn.BatchNorm3d}),
    (8, {"conv_short": (56, 8), "conv_long": (8, 8), "norms": nn.GroupNorm}),
])
def test_mtconv_channel_split(groups: int, expected: dict) -> None:
    conv = MTConv(64, 64, kernel_size=3, rate=0.875, padding=1, groups=groups)
    assert tuple(conv.conv_short.weight.shape[:2]) == expected["conv_short"]
    assert tuple(conv.conv_long.weight.shape[:2]) == expected["conv_long"]
    assert isinstance(conv.norm_short, expected["norms"]) and isinstance(conv.norm_long, expected["norms"])
    short, long = conv((torch.randn(2, 56, 8, 12, 12), torch.randn(2, 8, 4, 6, 6)))
    assert short.shape == (2, 56, 8, 12, 12) and long.shape == (2, 8, 4, 6, 6)
    assert not hasattr(MTConv(64, 128, 1, rate=0.875, stride=2, no_lateral=True), "conv_short2long")
    with pytest.raises(ValueError, match="bias"):
        MTConv(64, 64, 1, bias=True)


def test_shared_norm_long_sees_the_lateral_too() -> None:
    # Faithful to the original checkpoints: one norm_long normalises the long output AND the lateral,
    # so in training its BatchNorm statistics are updated twice per forward.
    conv = MTConv(64, 64, kernel_size=1, rate=0.875).train()
    conv((torch.randn(2, 56, 4, 8, 8), torch.randn(2, 8, 2, 4, 4)))
    assert int(conv.norm_short.num_batches_tracked) == 1
    assert int(conv.norm_long.num_batches_tracked) == 2


@pytest.mark.parametrize("name", ["MTNet_xs", "MTNet_xs_g8"])
def test_mtnet_state_dict_order_and_layers_match_original(name: str, reference: dict) -> None:
    # test_state_dict_keys.py checks keys/shapes/dtypes/params of all ten; this adds the registration ORDER
    # (pool before stem, conv1_1 ... sr_long inside a block) and the layer counts of the renamed builders.
    entry = reference["models"][name]
    with torch.device("meta"):
        model = create_model(name, num_classes=entry["num_classes"])
    expected = [(k, shape) for k, shape, _ in entry["state_dict"]]
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == expected
    assert [name for name, _ in model.named_children()][:2] == ["pool", "stem"]
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == entry["architecture"]["layers"]


@pytest.mark.slow
def test_mtnet_alias_and_zero_init_residual() -> None:
    with torch.device("meta"):
        assert [len(getattr(create_model("mtnet"), f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    model = create_model("mtnet_xs_g8", num_classes=7, zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, MTBlock)]
    assert len(blocks) == 8
    assert all(b.conv3.norm_short.weight.abs().sum() == 0 and b.conv3.norm_long.weight.abs().sum() == 0
               for b in blocks)


@pytest.mark.parametrize("name", ["mtnet_xs", "mtnet_xs_g8"])
@pytest.mark.parametrize("shape", [(2, 3, 8, 64, 64), (1, 3, 16, 112, 112)])
def test_mtnet_forward_backward(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).train()
    logits = model(torch.randn(shape))
    assert logits.shape == (shape[0], 5) and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.arange(shape[0]) % 5).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_mtnet_autocast_bf16_cpu() -> None:
    torch.manual_seed(0)
    model = create_model("mtnet_xs_g8", num_classes=5).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 8, 64, 64))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    logits.float().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mtnet_rejects_too_small_clips_with_one_line() -> None:
    model = create_model("mtnet_xs_g8", num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, MIN_FRAMES, MIN_SPATIAL, MIN_SPATIAL)).shape == (1, 5)
        assert model(torch.randn(1, 3, MIN_FRAMES, 32, 33)).shape == (1, 5)  # odd W pads H to a working size
        # The limits are real: the unchecked network fails one below them.
        with pytest.raises(RuntimeError):
            model._features(torch.randn(1, 3, MIN_FRAMES, 32, 32))
        with pytest.raises(ValueError):
            model._features(torch.randn(1, 3, MIN_FRAMES - 1, 64, 64))
        for shape in [(1, 3, 2, 64, 64), (1, 3, 8, 32, 32), (1, 3, 8, 64, 20), (3, 8, 64, 64), (1, 1, 8, 64, 64)]:
            with pytest.raises(ValueError) as err:
                model(torch.randn(shape))
            assert "\n" not in str(err.value)
            limits = f"{MIN_FRAMES} frames and {MIN_SPATIAL}x{MIN_SPATIAL}"
            assert limits in str(err.value) or "(B, 3, T, H, W)" in str(err.value)


def test_framewise_max_pool_equals_max_pool3d_with_ties() -> None:
    from network.conv import FramewiseMaxPool3d

    x = torch.randn(2, 5, 4, 11, 12, generator=torch.Generator().manual_seed(0)).relu()  # zeros: many ties
    plain = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
    framewise = FramewiseMaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = plain(xa), framewise(xb)
    grad = torch.randn(ya.shape, generator=torch.Generator().manual_seed(1))
    ya.backward(grad)
    yb.backward(grad)
    assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)
    temporal = FramewiseMaxPool3d(3, 2, 1)  # a temporal kernel falls back to MaxPool3d
    torch.testing.assert_close(temporal(x), nn.MaxPool3d(3, 2, 1)(x), rtol=0, atol=0)


def test_trimmed_mtconvs_give_the_plain_convs_outputs_and_gradients() -> None:
    import copy

    from network.conv import TrimmedConv3d, untrimmed

    torch.manual_seed(0)
    model = create_model("mtnet_xs", num_classes=5).train()
    assert isinstance(model.layer4[1].conv2.conv_short, TrimmedConv3d)
    plain = untrimmed(copy.deepcopy(model))
    x = torch.randn(2, 3, 16, 64, 64)  # layer4 runs at T = 1: its 3x3x3 convs are trimmed to 1x3x3
    out, ref = model(x), plain(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    w, w_ref = model.layer4[1].conv2.conv_short.weight.grad, plain.layer4[1].conv2.conv_short.weight.grad
    torch.testing.assert_close(w, w_ref, rtol=1e-4, atol=1e-6)
    assert w[:, :, [0, 2]].abs().sum() == 0  # the cut taps get the zero gradient of the full kernel
