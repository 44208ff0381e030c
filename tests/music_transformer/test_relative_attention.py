"""Relative global attention: the skew equals the definition, also past the table; caches are exact."""
import math

import pytest
import torch

from lightning_modules.components.attention import naive_attention
from lightning_modules.components.music_transformer import MusicTransformer
from lightning_modules.components.relative_attention import (RelativeGlobalAttention,
                                                             brute_force_relative_logits)
from lightning_modules.sampling import generate_batch, stream_tokens, top_k

TABLE = 6  # relative table rows; the sequences below are longer


def brute_force_attention(layer: RelativeGlobalAttention, x: torch.Tensor) -> torch.Tensor:
    """softmax((q k^T + q E[clip(i-j)]^T) / sqrt(D)) v with an explicit (T, T, D) gather."""
    q, k, v = (layer._heads(proj(x)) for proj in (layer.query, layer.key, layer.value))
    t = x.size(1)
    logits = (q @ k.transpose(-2, -1) + brute_force_relative_logits(q, layer.rel_emb, t)) / math.sqrt(q.size(-1))
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    y = logits.masked_fill(~causal, float("-inf")).softmax(-1) @ v
    return layer.out(y.transpose(1, 2).reshape(x.size(0), t, -1))


@pytest.mark.parametrize("tq,tk", [(1, 1), (5, 5), (TABLE, TABLE), (17, 17), (1, 17), (4, 17), (17, 40)])
def test_skew_equals_brute_force_on_visible_entries(tq, tk):
    torch.manual_seed(tq * 100 + tk)
    layer = RelativeGlobalAttention(16, 2, max_relative_distance=TABLE)
    q = torch.randn(3, 2, tq, 8)
    visible = torch.ones(tq, tk, dtype=torch.bool).tril(diagonal=tk - tq)
    fast = layer.relative_logits(q, tk).masked_fill(~visible, 0)
    torch.testing.assert_close(fast, brute_force_relative_logits(q, layer.rel_emb, tk), rtol=0, atol=1e-5)


@pytest.mark.parametrize("use_sdpa", [True, False])
@pytest.mark.parametrize("length", [4, TABLE, 3 * TABLE + 1])
def test_layer_output_and_gradients_equal_brute_force(use_sdpa, length):
    torch.manual_seed(length)
    layer = RelativeGlobalAttention(16, 4, max_relative_distance=TABLE, use_sdpa=use_sdpa)
    with torch.no_grad():
        layer.rel_emb.normal_(std=0.5)  # large enough that a wrong distance changes the output
    x = torch.randn(2, length, 16, requires_grad=True)
    fast, _ = layer(x)
    fast.square().sum().backward()
    grads = [x.grad.clone(), layer.rel_emb.grad.clone()]
    x.grad, layer.rel_emb.grad = None, None
    slow = brute_force_attention(layer, x)
    slow.square().sum().backward()
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[0], x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1], layer.rel_emb.grad, rtol=1e-4, atol=1e-5)
    if length > TABLE:  # the clipped rows are used: the last row gets gradient from far keys
        assert layer.rel_emb.grad[-1].abs().sum() > 0


def test_relative_off_is_the_causal_sdpa_layer():
    torch.manual_seed(0)
    layer = RelativeGlobalAttention(16, 2, relative=False)
    assert not hasattr(layer, "rel_emb")
    x = torch.randn(2, 9, 16)
    y, _ = layer(x)
    q, k, v = (layer._heads(proj(x)) for proj in (layer.query, layer.key, layer.value))
    ref = naive_attention(q, k, v, causal_offset=0)
    torch.testing.assert_close(y, layer.out(ref.transpose(1, 2).reshape(2, 9, 16)), rtol=1e-5, atol=1e-6)


def tiny_model(relative: bool = True, max_len: int = 48) -> MusicTransformer:
    torch.manual_seed(3)
    model = MusicTransformer(40, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=max_len,
                             max_relative_distance=TABLE, relative=relative, dropout=0.0).eval()
    with torch.no_grad():  # a random net with diverse greedy choices (not one repeated id)
        model.tok_emb.weight.normal_(std=1.0)
        model.head.weight.normal_(std=0.3)
        for block in model.blocks:
            if relative:
                block.attn.rel_emb.normal_(std=0.5)
    return model


@pytest.mark.parametrize("relative", [True, False])
def test_cached_and_uncached_greedy_decoding_agree(relative):
    model = tiny_model(relative)
    prompt = torch.randint(0, 40, (3, 7), generator=torch.Generator().manual_seed(1))
    steps = model.max_len - prompt.size(1)  # up to the full context, 7x past the relative table
    cached = list(stream_tokens(model, prompt, steps, [top_k(1)], use_cache=True))
    uncached = list(stream_tokens(model, prompt, steps, [top_k(1)], use_cache=False))
    assert len(cached) == len(uncached) == steps
    tokens_cached = torch.stack([t for t, _ in cached], 1)
    assert torch.equal(tokens_cached, torch.stack([t for t, _ in uncached], 1))
    assert len(set(tokens_cached.flatten().tolist())) > 5  # a real test: many different ids
    torch.testing.assert_close(torch.stack([lg for _, lg in cached]), torch.stack([lg for _, lg in uncached]),
                               rtol=1e-4, atol=1e-4)


def test_sliding_cache_decodes_past_the_context_with_bounded_memory():
    model = tiny_model(max_len=16)
    past_sizes = []
    original = model.forward

    def spy(ids, past=None, key_padding_mask=None):
        logits, cache = original(ids, past, key_padding_mask)
        past_sizes.append(cache[0][0].size(2))
        return logits, cache

    model.forward = spy
    out = model.generate(torch.randint(0, 40, (2, 5)), 50, [top_k(1)])
    assert out.shape == (2, 55) and max(past_sizes) == 16


def test_left_padded_batch_equals_each_prompt_alone():
    model = tiny_model()
    prompts = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16]]
    together = generate_batch(model, prompts, 12, [top_k(1)], pad_id=0)
    alone = [generate_batch(model, [p], 12, [top_k(1)], pad_id=0)[0] for p in prompts]
    assert together == alone and all(len(row) == 12 for row in together)
