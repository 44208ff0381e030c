"""The fast (fused, padded) LSTM path gives the PackedSequence results: forward and gradients."""
import copy

import pytest
import torch
from torch import nn

from lightning_modules.components.han import HANEncoder, VirtuosoNetSingle
from lightning_modules.components.lstm_runner import (
    length_buckets,
    reverse_within_length,
    run_lstm,
    run_per_group,
)
from tests.percepiano.helpers import percepiano_root


def test_reverse_within_length_and_buckets():
    rev = reverse_within_length(torch.tensor([3, 5, 1]), 5)
    assert rev.tolist() == [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4]]
    assert torch.equal(rev.gather(1, rev), torch.arange(5).expand(3, 5))  # an involution
    buckets = length_buckets([10, 200, 190, 30, 100, 101, 1])
    assert sorted(i for b in buckets for i in b) == list(range(7))
    assert buckets[0] == [1, 2] and [6] in buckets  # longest first; short ones not padded to 200
    assert all(min([10, 200, 190, 30, 100, 101, 1][i] for i in b) >= 0.6 * [10, 200, 190, 30, 100, 101, 1][b[0]]
               for b in buckets)


@pytest.mark.parametrize("bidirectional,layers", [(True, 3), (False, 2), (True, 1)])
def test_padded_path_equals_packed_forward_and_backward(bidirectional, layers):
    torch.manual_seed(0)
    lstm = nn.LSTM(6, 5, num_layers=layers, batch_first=True, bidirectional=bidirectional)
    lengths = torch.tensor([7, 1, 4, 7, 2])
    x = torch.randn(5, 7, 6)
    x[torch.arange(7) >= lengths.unsqueeze(1)] = 100.0  # padding content must not leak
    outs, grads = {}, {}
    for impl in ("packed", "padded"):
        xi = x.clone().requires_grad_()
        lstm.zero_grad()
        out = run_lstm(lstm, xi, lengths, impl)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs[impl], grads[impl] = out.detach(), [xi.grad] + [p.grad.clone() for p in lstm.parameters()]
    assert torch.allclose(outs["packed"], outs["padded"], atol=1e-6)
    assert torch.all(outs["padded"][torch.arange(7) >= lengths.unsqueeze(1)] == 0)
    for a, b in zip(grads["packed"], grads["padded"]):
        assert torch.allclose(a, b, atol=1e-5)


def test_per_group_padded_equals_packed():
    torch.manual_seed(1)
    lstm = nn.LSTM(4, 3, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(2, 9, 4)
    voice = torch.tensor([[0, 1, 0, 2, 0, 1, 0, -1, -1], [1, 1, 0, 1, 1, 1, 0, 1, 1]])
    assert torch.allclose(run_per_group(lstm, x, voice, "packed"), run_per_group(lstm, x, voice, "padded"), atol=1e-6)
    with pytest.raises(ValueError, match="lstm_impl"):
        run_per_group(lstm, x, voice, "cudnn")


@pytest.mark.realdata
@pytest.mark.parametrize("net_cls", [HANEncoder, VirtuosoNetSingle])
def test_fast_path_matches_packed_on_a_real_batch(net_cls, shared_data, platform_cache):
    from datamodules.percepiano.datamodule import PercePianoDataModule

    dm = PercePianoDataModule(root=str(percepiano_root(shared_data)), cache_dir=str(platform_cache),
                              limit_files=120, batch_size=8, slice_len=120)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["lengths"].min() < batch["lengths"].max()  # a batch that really is padded
    kw = {"note_size": 24, "hidden": 16, "contracted": 32, "final_heads": 2, "dropout": 0.0}
    if net_cls is HANEncoder:
        kw["num_attention_head"] = 2
    torch.manual_seed(2)
    nets = {"packed": net_cls(batch["x"].shape[-1], lstm_impl="packed", **kw)}
    nets["padded"] = copy.deepcopy(nets["packed"])
    nets["padded"].lstm_impl = "padded"
    res = {}
    for impl, net in nets.items():
        logits = net(batch["x"], batch["lengths"], batch["beat"], batch["measure"], batch["voice"])
        torch.nn.functional.mse_loss(torch.sigmoid(logits), batch["labels"]).backward()
        res[impl] = logits.detach(), {n: p.grad for n, p in net.named_parameters()}
    assert torch.allclose(res["packed"][0], res["padded"][0], atol=1e-5)
    for name, g in res["packed"][1].items():
        tol = 1e-4 * float(g.abs().max()) + 1e-9  # attention biases have near-cancelling gradients
        assert (g - res["padded"][1][name]).abs().max() <= tol, name
