"""HAN blocks: ContextAttention as specified, per-voice LSTMs, packing, padding invariance."""
import pytest
import torch

from lightning_modules.components.han import (
    ContextAttention,
    HANEncoder,
    VirtuosoNetSingle,
    bilstm,
    run_per_group,
)


def test_context_attention_matches_the_written_recipe_and_masks_padding():
    torch.manual_seed(0)
    att = ContextAttention(16, 4)
    assert att.context_vector.shape == (4, 4) and att.context_vector.abs().max() <= 1
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = att(x, mask)
    # by hand: Linear -> tanh -> heads -> dot context -> softmax over real steps -> weighted sum
    for b in range(2):
        n = int(mask[b].sum())
        t = torch.tanh(att.attention_net(x[b, :n])).view(n, 4, 4)
        w = torch.softmax((t * att.context_vector).sum(-1), dim=0)  # (n, H)
        expect = (x[b, :n].view(n, 4, 4) * w.unsqueeze(-1)).sum(0).flatten()
        assert torch.allclose(out[b], expect, atol=1e-6)
    x2 = x.clone()
    x2[0, 3:] = 100.0  # padding content must not matter
    assert torch.allclose(att(x2, mask)[0], out[0], atol=1e-6)


def test_grouped_attention_equals_attention_inside_each_group():
    torch.manual_seed(1)
    att = ContextAttention(8, 2)
    x = torch.randn(1, 7, 8)
    group = torch.tensor([[0, 0, 1, 1, 1, 2, -1]])
    nodes = att.grouped(x, group, 3)
    for g, sl in enumerate([slice(0, 2), slice(2, 5), slice(5, 6)]):
        assert torch.allclose(nodes[0, g], att(x[:, sl])[0], atol=1e-6)


def test_run_per_group_equals_separate_lstm_runs():
    torch.manual_seed(2)
    lstm = bilstm(4, 3, 2, 0.0)
    x = torch.randn(2, 6, 4)
    voice = torch.tensor([[0, 1, 0, 1, 0, -1], [2, 2, 0, 2, -1, -1]])
    out = run_per_group(lstm, x, voice)
    for b in range(2):
        for v in voice[b].unique():
            if v < 0:
                continue
            sel = (voice[b] == v).nonzero().flatten()
            alone, _ = lstm(x[b, sel].unsqueeze(0))
            assert torch.allclose(out[b, sel], alone[0], atol=1e-5)
    assert torch.all(out[0, 5] == 0) and torch.all(out[1, 4:] == 0)


def _batch(T=12, pad=0):
    torch.manual_seed(3)
    lengths = torch.tensor([T, T - 4])
    x = torch.cat([torch.randn(2, T, 10), 50 * torch.randn(2, pad, 10)], 1)  # real steps, then garbage
    x[1, T - 4:] = 50 * torch.randn(4 + pad, 10)
    beat = torch.arange(T + pad).div(2, rounding_mode="floor").expand(2, -1).clone()
    measure = beat.div(3, rounding_mode="floor")
    voice = (torch.arange(T + pad) % 2).expand(2, -1).clone()
    for idx in (beat, measure, voice):
        idx[0, T:] = -1
        idx[1, T - 4:] = -1
    return x, lengths, beat, measure, voice


@pytest.mark.parametrize("net_cls", [HANEncoder, VirtuosoNetSingle])
def test_encoders_give_19_logits_independent_of_padding(net_cls):
    kw = dict(note_size=16, hidden=8, contracted=16, final_heads=2, dropout=0.0)
    if net_cls is HANEncoder:
        kw["num_attention_head"] = 2
    torch.manual_seed(4)
    net = net_cls(10, **kw).eval()
    a = net(*_batch())
    b = net(*_batch(pad=5))  # the same real steps  # 5 more padded steps with garbage features
    assert a.shape == (2, 19) and torch.allclose(a, b, atol=1e-5)


def test_published_sizes():
    han = HANEncoder(41)
    assert han.performance_contractor.in_features == 2048 and han.performance_contractor.out_features == 512
    assert han.beat_attention.attention_net.in_features == 1024 and han.measure_lstm.num_layers == 1
    assert han.final_attention.num_head == 8
    base = VirtuosoNetSingle(41)
    assert base.lstm.num_layers == 7 and base.lstm.hidden_size == 256
    heads = [m for m in base.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in heads] == [(512, 512), (512, 19)]
