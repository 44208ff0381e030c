"""Relative global attention (Music Transformer, Huang et al. 2018) with the memory-efficient skew.

The logits are (q k^T + S_rel) / sqrt(D) with S_rel[i, j] = q_i . E[d(i, j)], where d is the
distance from key j back to query i and E a learned (H, R, D) table. Distances >= R share the
last row E[R - 1] (clipping, as in Shaw et al.), so any length works, also beyond the table.

The skew computes S_rel from one (Tq, Tk) product q @ E_dist^T, never an (L, L, D) tensor.
It also covers Tq < Tk (a KV cache holding earlier positions): query i sits at absolute
position (Tk - Tq) + i, and every relative distance is computed inside the window the cache
holds, so a cache trimmed to its last W entries (a sliding window) stays exact.

With `relative=False` the layer is the plain `CausalSelfAttention` (SDPA fast path).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.components.attention import CausalSelfAttention, KVCache, naive_attention


def distance_indices(n_keys: int, table_len: int, device=None) -> torch.Tensor:
    """Table rows of the distances n_keys-1, ..., 1, 0 (left to right), clipped to the table."""
    return torch.arange(n_keys - 1, -1, -1, device=device).clamp(max=table_len - 1)


def skew(qe: torch.Tensor) -> torch.Tensor:
    """(..., Tq, Tk) with column c = distance Tk-1-c  ->  (..., Tq, Tk) indexed by key j.

    out[i, j] = qe[i, j + Tq - 1 - i], exact wherever key j is visible to query i
    (j <= Tk - Tq + i); other entries are arbitrary and must be masked. Pad one column on the
    left, flatten, drop the first Tq entries and read the rest as (Tq, Tk): row i then starts
    (Tq - 1 - i) columns to the right of where it started.
    """
    *batch, tq, tk = qe.shape
    padded = F.pad(qe, (1, 0))  # (..., Tq, Tk + 1)
    return padded.flatten(-2)[..., tq:].reshape(*batch, tq, tk)


def attention_bias(rel_logits: torch.Tensor | None, tq: int, tk: int, scale: float,
                   key_padding_mask: torch.Tensor | None = None, device=None) -> torch.Tensor:
    """Float bias (B|1, H|1, Tq, Tk): scaled relative logits, -inf on future and padded keys.

    A padded query may always see itself, so no softmax row is all -inf (no NaN anywhere).
    """
    if tq == 1 and key_padding_mask is None and rel_logits is not None:
        return rel_logits * scale  # one query after every key: nothing to mask
    offset = tk - tq
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=device).tril(diagonal=offset)  # (Tq, Tk)
    if key_padding_mask is not None:  # (B, Tk), True = real token
        diagonal = torch.zeros_like(allowed)
        diagonal[torch.arange(tq), torch.arange(tq) + offset] = True
        allowed = (allowed & key_padding_mask[:, None, None, :]) | diagonal  # (B, 1, Tq, Tk)
    bias = rel_logits * scale if rel_logits is not None else torch.zeros(tq, tk, device=device)
    return torch.where(allowed, bias, float("-inf"))


class RelativeGlobalAttention(CausalSelfAttention):
    """Causal multi-head attention with learned relative position logits and a KV cache.

    max_relative_distance: rows of the relative table (R); farther keys share row R - 1.
    relative: False gives plain causal attention (SDPA `is_causal` fast path, no table).
    """

    def __init__(self, d_model: int, n_heads: int, max_relative_distance: int = 512,
                 dropout: float = 0.0, bias: bool = True, relative: bool = True,
                 use_sdpa: bool = True):
        super().__init__(d_model, n_heads, dropout, bias, use_sdpa)
        self.relative = relative
        self.max_relative_distance = max_relative_distance
        if relative:
            # (H, R, D): row r embeds "the key is r steps before the query"
            self.rel_emb = nn.Parameter(torch.randn(n_heads, max_relative_distance, self.head_dim) * 0.02)

    def relative_logits(self, q: torch.Tensor, n_keys: int) -> torch.Tensor:
        """S_rel (B, H, Tq, Tk) for queries at the last Tq of n_keys positions (unscaled)."""
        rows = distance_indices(n_keys, self.max_relative_distance, q.device)
        if q.size(2) == 1:  # decoding one token: score the table once, then pick each key's row
            return (q @ self.rel_emb.transpose(-2, -1))[..., rows]  # (B, H, 1, R) -> (B, H, 1, Tk)
        e_dist = self.rel_emb[:, rows]  # (H, Tk, D), distances Tk-1 .. 0
        return skew(q @ e_dist.transpose(-2, -1))  # (B, H, Tq, Tk)

    def forward(self, x: torch.Tensor, past: KVCache | None = None,
                key_padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        """x: (B, T, C); key_padding_mask: (B, T_past + T), True on real tokens (left padding).

        Returns (B, T, C) and the cache extended by these T positions.
        """
        if not self.relative and key_padding_mask is None:
            return super().forward(x, past)
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        tq, tk = q.size(2), k.size(2)
        rel = self.relative_logits(q, tk) if self.relative else None
        bias = attention_bias(rel, tq, tk, self.head_dim ** -0.5, key_padding_mask, q.device)
        p = self.dropout if self.training else 0.0
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        else:
            y = naive_attention(q, k, v, None, dropout_p=p, training=self.training, bias=bias)
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, -1)), (k, v)


def brute_force_relative_logits(q: torch.Tensor, rel_emb: torch.Tensor, n_keys: int) -> torch.Tensor:
    """The definition, through an explicit (Tq, Tk, D) gather: for tests and the memory bench.

    q: (B, H, Tq, D), rel_emb: (H, R, D). Entries of keys after the query are 0.
    """
    tq = q.size(2)
    offset = n_keys - tq
    query_pos = torch.arange(tq, device=q.device)[:, None] + offset
    dist = query_pos - torch.arange(n_keys, device=q.device)[None, :]  # (Tq, Tk)
    gathered = rel_emb[:, dist.clamp(min=0, max=rel_emb.size(1) - 1)]  # (H, Tq, Tk, D)
    logits = torch.einsum("bhid,hijd->bhij", q, gathered)
    return logits.masked_fill(dist < 0, 0.0)
