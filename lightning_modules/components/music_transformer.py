"""The Music Transformer decoder stack: pre-norm blocks of relative global attention + FFN.

With relative attention there are no absolute positions, so the KV cache can slide: once it
holds `max_len` positions the oldest are dropped (`trim_cache`) and decoding goes on at a
constant cost per token. With `relative=False` a learned absolute position table is used and
the stack behaves like `TransformerDecoder` (the cache is rebuilt when it is full).
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.components.attention import KVCache
from lightning_modules.components.relative_attention import RelativeGlobalAttention
from lightning_modules.sampling import LogitProcessor, stream_tokens


class MusicTransformerBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float,
                 max_relative_distance: int, relative: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = RelativeGlobalAttention(d_model, n_heads, max_relative_distance, dropout,
                                            relative=relative)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model),
                                nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past: KVCache | None = None,
                key_padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        h, cache = self.attn(self.norm1(x), past, key_padding_mask)
        x = x + self.drop(h)
        return x + self.ff(self.norm2(x)), cache


class MusicTransformer(nn.Module):
    """Decoder-only LM over token ids.

    max_len: the context (training window; the sliding cache window at generation).
    max_relative_distance: rows of each layer's relative table (default max_len); longer
        distances are clipped to the last row, so sequences may exceed it.
    tie_weights: share the input embedding with the output head (off by default: LoRA's
        trainable control-token embeddings must not leak into the head when merged).
    """

    def __init__(self, vocab_size: int, d_model: int = 256, n_layers: int = 6, n_heads: int = 8,
                 d_ff: int | None = None, max_len: int = 512, max_relative_distance: int | None = None,
                 relative: bool = True, dropout: float = 0.1, tie_weights: bool = False):
        super().__init__()
        self.max_len, self.relative = max_len, relative
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = None if relative else nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(
            MusicTransformerBlock(d_model, n_heads, d_ff or 4 * d_model, dropout,
                                  max_relative_distance or max_len, relative)
            for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.drop = nn.Dropout(dropout)
        self.apply(self._init)
        if tie_weights:
            self.head.weight = self.tok_emb.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def cache_slides(self) -> bool:
        """A full cache may drop its oldest entries and stay exact (no absolute positions)."""
        return self.relative

    @staticmethod
    def cache_len(past: list[KVCache] | None) -> int:
        return past[0][0].size(2) if past else 0

    @staticmethod
    def trim_cache(past: list[KVCache], keep: int) -> list[KVCache]:
        return [(k[:, :, -keep:], v[:, :, -keep:]) for k, v in past]

    def forward(self, ids: torch.Tensor, past: list[KVCache] | None = None,
                key_padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[KVCache]]:
        """ids (B, T) -> logits (B, T, V) and the per-layer cache.

        key_padding_mask: (B, T_past + T), True on real tokens, for left-padded batches.
        """
        x = self.tok_emb(ids)  # (B, T, C)
        if self.pos_emb is not None:
            start = self.cache_len(past)
            if start + ids.size(1) > self.max_len:
                raise ValueError(f"sequence of {start + ids.size(1)} exceeds max_len {self.max_len} "
                                 "(absolute positions); use relative=true for longer sequences")
            x = x + self.pos_emb(torch.arange(start, start + ids.size(1), device=ids.device))
        x = self.drop(x)
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, past[i] if past else None, key_padding_mask)
            caches.append(cache)
        return self.head(self.norm(x)), caches

    def loss(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, _ = self(ids)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, processors: list[LogitProcessor],
                 eos_id: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Same contract as TransformerDecoder.generate: (B, T) prompt -> (B, T + new) ids."""
        new = [tok for tok, _ in stream_tokens(self, prompt, max_new_tokens, processors, eos_id=eos_id,
                                              generator=generator, use_cache=use_cache)]
        return torch.cat([prompt] + [t[:, None] for t in new], dim=1)

    def stream(self, prompt: torch.Tensor, max_new_tokens: int, processors: list[LogitProcessor],
               **kwargs) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (token (B,), logits (B, V)) per decoded step; see sampling.stream_tokens."""
        return stream_tokens(self, prompt, max_new_tokens, processors, **kwargs)
