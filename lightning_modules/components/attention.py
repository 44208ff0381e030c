"""Causal multi-head self-attention with a KV cache; SDPA fast path with an explicit fallback."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

KVCache = tuple[torch.Tensor, torch.Tensor]  # (B, H, T_past, D) each


def naive_attention(q, k, v, causal_offset: int | None, dropout_p: float = 0.0, training: bool = False,
                    bias: torch.Tensor | None = None):
    """Reference attention: softmax(q k^T / sqrt(D) + bias) v. causal_offset = position of q[0] in k.

    bias: an additive logit bias broadcastable to (B, H, Tq, Tk) (-inf entries mask keys).
    """
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if bias is not None:
        att = att + bias
    if causal_offset is not None:
        tq, tk = q.size(-2), k.size(-2)
        allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=causal_offset)
        att = att.masked_fill(~allowed, float("-inf"))
    att = F.dropout(att.softmax(dim=-1), p=dropout_p, training=training)
    return att @ v  # (B, H, Tq, D)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 use_sdpa: bool = True):
        super().__init__()
        assert d_model % n_heads == 0, f"d_model {d_model} not divisible by n_heads {n_heads}"
        self.n_heads, self.head_dim, self.dropout = n_heads, d_model // n_heads, dropout
        self.use_sdpa = use_sdpa and hasattr(F, "scaled_dot_product_attention")
        self.query = nn.Linear(d_model, d_model, bias=bias)
        self.key = nn.Linear(d_model, d_model, bias=bias)
        self.value = nn.Linear(d_model, d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, x: torch.Tensor, past: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """x: (B, T, C). Returns (B, T, C) and the cache extended by these T positions."""
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        offset = k.size(2) - q.size(2)
        p = self.dropout if self.training else 0.0
        if self.use_sdpa and offset == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif self.use_sdpa and q.size(2) == 1:  # one new token sees the whole cache: no mask needed
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            y = naive_attention(q, k, v, causal_offset=offset, dropout_p=p, training=self.training)
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, -1)), (k, v)
