"""The unrolled LSTM/GRU of the SR blocks against the modules themselves: values, gradients, every parameter."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from network.recurrent import recurrent_states, unrolled


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_unrolled_cell_equals_the_module_in_values_and_gradients(cell: type, steps: int) -> None:
    torch.manual_seed(steps)
    rnn = cell(6, 6, num_layers=2)
    seq = torch.randn(steps, 3, 6, requires_grad=True)
    ref = rnn(seq)[0]
    out = recurrent_states(rnn, seq)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(ref)
    params = list(rnn.parameters())
    ref_grads = torch.autograd.grad(ref, [seq, *params], grad)
    # every parameter takes part, as in the module: with one step the hidden weights get a zero gradient, not
    # none, so weight decay, momentum and DDP treat them as before
    grads = torch.autograd.grad(out, [seq, *params], grad)
    for (name, _), a, b in zip([("input", seq), *rnn.named_parameters()], grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


def test_cells_it_does_not_cover_run_as_the_module() -> None:
    torch.manual_seed(0)
    for rnn in (nn.LSTM(4, 4, bidirectional=True), nn.LSTM(4, 4, bias=False), nn.GRU(4, 4, batch_first=True),
                nn.LSTM(4, 5, proj_size=2), nn.RNN(4, 4)):
        assert not unrolled(rnn)
        seq = torch.randn(3, 2, 4)
        assert torch.equal(recurrent_states(rnn, seq), rnn(seq)[0])
    assert unrolled(nn.LSTM(4, 4, num_layers=3)) and unrolled(nn.GRU(4, 4))
