"""Building blocks of the fractal levels: bidirectional relative attention (MAR levels), cross
attention to a memory, a pre-norm block with an optional KV cache, and the conditioning that
maps a parent level's hidden states onto a child level (temporal context window, aligned
sub-position, cross-attention memory of the parent's tokens plus the global chroma)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.components.attention import KVCache
from lightning_modules.components.relative_attention import (
    RelativeGlobalAttention,
    distance_indices,
    skew,
)


class BidirectionalRelativeAttention(RelativeGlobalAttention):
    """Relative global attention without the causal mask: keys before the query use the shared
    module's table (`rel_emb`), keys after it a second table read on the time-reversed sequence."""

    def __init__(self, d_model: int, n_heads: int, max_relative_distance: int = 64, dropout: float = 0.0):
        super().__init__(d_model, n_heads, max_relative_distance, dropout, relative=True)
        self.rel_emb_future = nn.Parameter(torch.randn_like(self.rel_emb) * 0.02)

    def forward(self, x: torch.Tensor, past=None, key_padding_mask=None) -> tuple[torch.Tensor, None]:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        t = q.size(2)
        rows = distance_indices(t, self.max_relative_distance, q.device)
        past_rel = skew(q @ self.rel_emb[:, rows].transpose(-2, -1))  # (B, H, T, T), valid j <= i
        future_rel = skew(q.flip(2) @ self.rel_emb_future[:, rows].transpose(-2, -1)).flip(2).flip(3)
        lower = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
        bias = torch.where(lower, past_rel, future_rel) * self.head_dim ** -0.5
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        b, _, _, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, -1)), None


class CrossAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.query, self.kv = nn.Linear(d_model, d_model), nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def memory_kv(self, memory: torch.Tensor) -> KVCache:
        b, m, _ = memory.shape
        k, v = self.kv(memory).view(b, m, 2, self.n_heads, -1).permute(2, 0, 3, 1, 4)  # (B, H, M, D)
        return k, v

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None,
                kv: KVCache | None = None) -> torch.Tensor:
        """x (B, T, C) attends to memory (B, M, C); memory_mask (B, M) True = usable key.
        kv: the memory's keys/values from `memory_kv` (cached while decoding)."""
        b, t, c = x.shape
        q = self.query(x).view(b, t, self.n_heads, -1).transpose(1, 2)  # (B, H, T, D)
        k, v = kv if kv is not None else self.memory_kv(memory)
        mask = None if memory_mask is None else memory_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class FractalBlock(nn.Module):
    """Pre-norm: self-attention (relative; causal with KV cache, or bidirectional), cross
    attention to the memory (parent tokens + chroma), feed-forward."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, causal: bool,
                 max_relative_distance: int = 64):
        super().__init__()
        self.causal = causal
        attn_cls = RelativeGlobalAttention if causal else BidirectionalRelativeAttention
        self.attn = attn_cls(d_model, n_heads, max_relative_distance, dropout=dropout)
        self.cross = CrossAttention(d_model, n_heads, dropout)
        self.norm1, self.norm_cross, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None,
                past: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """past / returned cache: (self-attention KV, the memory's cross-attention KV)."""
        self_past, memory_kv = past if past is not None else (None, None)
        h, cache = self.attn(self.norm1(x), self_past)
        x = x + self.drop(h)
        if memory_kv is None:
            memory_kv = self.cross.memory_kv(memory)
        x = x + self.drop(self.cross(self.norm_cross(x), memory, memory_mask, memory_kv))
        return x + self.drop(self.ff(self.norm2(x))), (cache, memory_kv)


class ChromaTokens(nn.Module):
    """(B, 12) pitch-class profile -> 12 memory tokens: a pitch-class embedding scaled by weight."""

    def __init__(self, d_model: int):
        super().__init__()
        self.pc = nn.Parameter(torch.randn(12, d_model) * 0.02)
        self.value = nn.Linear(1, d_model)

    def forward(self, chroma: torch.Tensor) -> torch.Tensor:
        return self.pc[None] + self.value(chroma[..., None])  # (B, 12, C)


class ParentConditioner(nn.Module):
    """Parent hidden (B, n_p, C_p) -> per child token condition (B, n_p * g, C) and memory.

    context_k: the condition of a child token aggregates parent tokens [t - k, t + k] (Conv1d).
    cross_window: None = the memory holds every parent token (same for all children); w = each
    parent patch's children see parent tokens [p - w, p + w] (with an offset embedding). Only
    patch-scoped levels use the window; window-scoped (MAR) levels always see every parent token.
    patch_scope: the child level runs one sequence per parent token (AR levels, the output).
    """

    def __init__(self, d_parent: int, d_model: int, group: int, context_k: int = 1,
                 cross_window: int | None = None, patch_scope: bool = False):
        super().__init__()
        self.group, self.cross_window, self.patch_scope = group, cross_window, patch_scope
        self.context = nn.Conv1d(d_parent, d_model, 2 * context_k + 1, padding=context_k)
        self.sub_position = nn.Embedding(group, d_model)
        self.memory_proj = nn.Linear(d_parent, d_model)
        if cross_window is not None:
            self.offset = nn.Embedding(2 * cross_window + 1, d_model)

    def forward(self, parent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        b, n_p, _ = parent.shape
        ctx = self.context(parent.transpose(1, 2)).transpose(1, 2)  # (B, n_p, C)
        cond = ctx.repeat_interleave(self.group, dim=1)  # (B, n_p * g, C)
        cond = cond + self.sub_position.weight.repeat(n_p, 1)[None]
        mem = self.memory_proj(parent)  # (B, n_p, C)
        if self.cross_window is None:
            if self.patch_scope:
                mem = mem.repeat_interleave(n_p, dim=0)  # (B * n_p, n_p, C)
            return cond, mem, None
        w = self.cross_window
        padded = F.pad(mem, (0, 0, w, w))  # (B, n_p + 2w, C)
        window = padded.unfold(1, 2 * w + 1, 1).permute(0, 1, 3, 2)  # (B, n_p, 2w+1, C)
        window = window + self.offset.weight[None, None]
        pos = torch.arange(n_p, device=parent.device)[:, None] + torch.arange(-w, w + 1, device=parent.device)
        valid = ((pos >= 0) & (pos < n_p))[None].expand(b, -1, -1)  # (B, n_p, 2w+1)
        if self.patch_scope:
            return cond, window.reshape(b * n_p, 2 * w + 1, -1), valid.reshape(b * n_p, -1)
        return cond, mem, None  # one sequence over the whole window: all parent tokens


def with_chroma(memory: torch.Tensor | None, mask: torch.Tensor | None, chroma_tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the 12 chroma tokens (B', 12, C) to a memory (B', M, C) and its mask."""
    valid_chroma = torch.ones(chroma_tokens.shape[:2], dtype=torch.bool, device=chroma_tokens.device)
    if memory is None:
        return chroma_tokens, valid_chroma
    if mask is None:
        mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)
    return torch.cat([memory, chroma_tokens], 1), torch.cat([mask, valid_chroma], 1)
