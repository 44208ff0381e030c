"""A small pre-norm decoder-only transformer over token ids; owns `generate`."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.components.attention import CausalSelfAttention, KVCache
from lightning_modules.sampling import LogitProcessor, sample_next


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        h, cache = self.attn(self.norm1(x), past)
        x = x + self.drop(h)
        return x + self.ff(self.norm2(x)), cache


class TransformerDecoder(nn.Module):
    def __init__(self, vocab_size: int, d_model: int = 256, n_layers: int = 4, n_heads: int = 4,
                 d_ff: int | None = None, max_len: int = 512, dropout: float = 0.1, **_unused):
        super().__init__()
        self.max_len = max_len
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff or 4 * d_model, dropout)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying
        self.drop = nn.Dropout(dropout)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor, past: list[KVCache] | None = None
                ) -> tuple[torch.Tensor, list[KVCache]]:
        """ids: (B, T) -> logits (B, T, V) and the per-layer KV cache."""
        start = past[0][0].size(2) if past else 0
        if start + ids.size(1) > self.max_len:
            raise ValueError(f"sequence of {start + ids.size(1)} exceeds max_len {self.max_len}")
        pos = torch.arange(start, start + ids.size(1), device=ids.device)
        x = self.drop(self.tok_emb(ids) + self.pos_emb(pos))  # (B, T, C)
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, past[i] if past else None)
            caches.append(cache)
        return self.head(self.norm(x)), caches

    def loss(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, _ = self(ids)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, processors: list[LogitProcessor],
                 eos_id: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Extend prompt (B, T) by up to max_new_tokens sampled ids; stops when all rows hit EOS.

        Past max_len the context slides: the cache is rebuilt from the last max_len // 2 tokens.
        """
        seq, past = prompt, None
        done = torch.zeros(prompt.size(0), dtype=torch.bool, device=prompt.device)
        for _ in range(max_new_tokens):
            if not use_cache or past is None or past[0][0].size(2) >= self.max_len:
                context = seq[:, -(self.max_len // 2 if seq.size(1) >= self.max_len else self.max_len):]
                logits, past = self(context)
            else:
                logits, past = self(seq[:, -1:], past)
            if not use_cache:
                past = None
            nxt = sample_next(logits[:, -1], processors, generator)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                done |= nxt == eos_id
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            if eos_id is not None and bool(done.all()):
                break
        return seq
