"""One fractal level generator: MAR (bidirectional, random-order masking with a cosine schedule)
or AR (causal within each parent unit), predicting a `SummarySpec` per time unit.

A level with unit u covers a window of T steps with T / u tokens. MAR levels (and the root)
run over the whole window; AR levels below the root run one short sequence per parent token
("steps within a beat"). Every level gets, per token, a condition from its parent (temporal
context window + aligned sub-position), cross-attends to the parent's tokens and to the
global chroma, and hands its own hidden states to the next level.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lightning_modules.components.fractal_blocks import (
    ChromaTokens,
    FractalBlock,
    ParentConditioner,
    with_chroma,
)
from lightning_modules.components.fractal_summary import (
    SummarySpec,
    cosine_mask_ratio,
    select_values,
)

Progress = Callable[[str, int, int], None]  # (level name, step, total steps)


class LevelGenerator(nn.Module):
    def __init__(self, name: str, kind: str, unit_steps: int, summary: list[str], n_pitches: int,
                 pitch_low: int, window_steps: int, n_density: int = 16, velocity_bins: int = 32,
                 d_model: int = 128, n_layers: int = 2, n_heads: int = 4, d_ff: int | None = None,
                 dropout: float = 0.1, max_relative_distance: int = 64, parent_dim: int | None = None,
                 parent_unit: int | None = None, context_k: int = 1, cross_window: int | None = None,
                 mar_iters: int = 8):
        super().__init__()
        if kind not in ("mar", "ar"):
            raise ValueError(f"level {name}: kind must be 'mar' or 'ar', got {kind!r}")
        if window_steps % unit_steps or (parent_unit and parent_unit % unit_steps):
            raise ValueError(f"level {name}: unit_steps {unit_steps} must divide the window "
                             f"({window_steps}) and the parent unit ({parent_unit})")
        self.name, self.kind, self.unit, self.mar_iters = name, kind, unit_steps, mar_iters
        self.spec = SummarySpec(summary, n_pitches, pitch_low, n_density, velocity_bins)
        self.d_model = d_model
        self.is_root = parent_dim is None
        self.patch_scope = kind == "ar" and not self.is_root
        self.group = window_steps // unit_steps if self.is_root else parent_unit // unit_steps
        self.position = nn.Embedding(self.group if self.patch_scope else window_steps // unit_steps, d_model)
        self.in_proj = nn.Linear(self.spec.feature_dim, d_model)
        self.special = nn.Parameter(torch.randn(d_model) * 0.02)  # MAR: mask token; AR: start token
        if self.is_root:
            self.root_cond = nn.Parameter(torch.zeros(d_model))
        else:
            self.conditioner = ParentConditioner(parent_dim, d_model, self.group, context_k, cross_window,
                                                 self.patch_scope)
        self.chroma = ChromaTokens(d_model)
        self.blocks = nn.ModuleList(FractalBlock(d_model, n_heads, d_ff or 4 * d_model, dropout,
                                                 causal=kind == "ar", max_relative_distance=max_relative_distance)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.heads = nn.ModuleDict({k: nn.Linear(d_model, self.spec.sizes[k]) for k in self.spec.kinds})

    # ---- shapes ------------------------------------------------------------------------------
    def _scope(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, ...) -> (B * n / g, g, ...) for patch-scoped levels."""
        return x.reshape(-1, self.group, *x.shape[2:]) if self.patch_scope else x

    def _unscope(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        return x.reshape(batch, -1, *x.shape[2:]) if self.patch_scope else x

    def condition(self, parent: torch.Tensor | None, chroma: torch.Tensor, n_tokens: int):
        """-> cond (B', n', C) incl. positions, memory (B', M, C), memory mask (B', M)."""
        b = chroma.size(0)
        if parent is None:
            cond, memory, mask = self.root_cond.expand(b, n_tokens, -1), None, None
        else:
            cond, memory, mask = self.conditioner(parent)
        cond = self._scope(cond)
        tokens = self.chroma(chroma)  # (B, 12, C)
        if self.patch_scope:
            tokens = tokens.repeat_interleave(cond.size(0) // b, dim=0)
        memory, mask = with_chroma(memory, mask, tokens)
        return cond + self.position.weight[None, :cond.size(1)], memory, mask

    def run(self, x: torch.Tensor, cond: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + cond
        for block in self.blocks:
            x, _ = block(x, memory, mask)
        return self.norm(x)

    def predict(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: head(h) for k, head in self.heads.items()}

    def embed(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.in_proj(self.spec.features(values))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The last layer every lower level's loss flows through (GradNorm's W)."""
        return [self.blocks[-1].ff[2].weight]

    # ---- training ----------------------------------------------------------------------------
    def train_level(self, velocity: torch.Tensor, duration: torch.Tensor, chroma: torch.Tensor,
                    parent: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (this level's loss, hidden (B, n, C) that conditions the next level)."""
        b = velocity.size(0)
        values = self.spec.targets(velocity, self.unit)
        n_tokens = next(iter(values.values())).size(1)
        cond, memory, mask = self.condition(parent, chroma, n_tokens)
        scoped = {k: self._scope(v) for k, v in values.items()}
        feat = self.embed(scoped)  # (B', n', C)
        if self.kind == "mar":
            bp, n = feat.shape[:2]
            n_mask = (cosine_mask_ratio(torch.rand(bp, device=feat.device)) * n).ceil().clamp(1, n)
            rank = torch.rand(bp, n, device=feat.device).argsort(1).argsort(1)  # a random order
            masked = rank < n_mask[:, None]
            h = self.run(torch.where(masked[..., None], self.special, feat), cond, memory, mask)
            loss = self.spec.loss(self.predict(h), scoped, masked.float())
            child = self.run(feat, cond, memory, mask)  # every token known, as after sampling
        else:
            start = self.special.expand(feat.size(0), 1, -1)
            h = self.run(torch.cat([start, feat[:, :-1]], 1), cond, memory, mask)
            loss = self.spec.loss(self.predict(h), scoped)
            child = h + feat  # position k's state plus the token it emitted
        return loss, self._unscope(child, b)

    # ---- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def sample_level(self, chroma: torch.Tensor, parent: torch.Tensor | None, n_tokens: int,
                     reference: dict[str, torch.Tensor] | None = None, regenerate: torch.Tensor | None = None,
                     temperature: float = 1.0, top_p: float | None = None,
                     generator: torch.Generator | None = None, progress: Progress | None = None
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Sample the tokens where `regenerate` (B, n) is True, keep `reference` elsewhere.
        -> (values {kind: (B, n, ...)}, hidden (B, n, C))."""
        b, dev = chroma.size(0), chroma.device
        if reference is None:
            silence = torch.zeros(b, n_tokens * self.unit, self.spec.n_pitches, dtype=torch.long, device=dev)
            reference = {k: v.clamp(min=0) if v.dtype == torch.long else v
                         for k, v in self.spec.targets(silence, self.unit).items()}
        if regenerate is None:
            regenerate = torch.ones(b, n_tokens, dtype=torch.bool, device=dev)
        cond, memory, mask = self.condition(parent, chroma, n_tokens)
        values = {k: self._scope(v).clone() for k, v in reference.items()}
        keep = self._scope(regenerate.logical_not())
        sample = dict(temperature=temperature, top_p=top_p, generator=generator)
        if self.kind == "mar":
            values, child = self._sample_mar(values, keep, cond, memory, mask, sample, progress)
        else:
            values, child = self._sample_ar(values, keep, cond, memory, mask, sample, progress)
        return {k: self._unscope(v, b) for k, v in values.items()}, self._unscope(child, b)

    def _sample_mar(self, values, known, cond, memory, mask, sample, progress):
        gen = sample["generator"]
        order = torch.rand(known.shape, generator=gen, device=known.device)  # a random order
        unknown_at_start = (~known).sum(1)
        for it in range(self.mar_iters):
            if bool(known.all()):
                break
            h = self.run(torch.where(known[..., None], self.embed(values), self.special), cond, memory, mask)
            candidate = self.spec.sample(self.predict(h), **sample)
            remaining = (unknown_at_start * math.cos(math.pi / 2 * (it + 1) / self.mar_iters)).floor().long()
            n_reveal = ((~known).sum(1) - remaining).clamp(min=1)
            rank = torch.where(known, torch.full_like(order, 2.0), order).argsort(1).argsort(1)
            reveal = ~known & (rank < n_reveal[:, None])
            values = select_values(candidate, reveal, values)
            known = known | reveal
            if progress:
                progress(self.name, it + 1, self.mar_iters)
        return values, self.run(self.embed(values), cond, memory, mask)

    def _sample_ar(self, values, keep, cond, memory, mask, sample, progress):
        n = keep.size(1)
        x = self.special.expand(keep.size(0), 1, -1)
        states = []
        for k in range(n):
            h = self.run(x, cond[:, :k + 1], memory, mask)[:, k:k + 1]  # (B', 1, C)
            candidate = self.spec.sample(self.predict(h), **sample)
            at_k = {key: v[:, k:k + 1] for key, v in values.items()}
            chosen = select_values(at_k, keep[:, k:k + 1], candidate)
            for key in values:
                values[key][:, k:k + 1] = chosen[key]
            x = torch.cat([x, self.embed(chosen)], 1)
            states.append(h)
            if progress:
                progress(self.name, k + 1, n)
        return values, torch.cat(states, 1) + self.embed(values)
