"""The last fractal level: a small causal transformer that emits the notes of one step.

One sequence per step: BOS, then the onset pitches in ascending order, then END. Each emitted
pitch also gets a velocity class (velocity_bins-way cross-entropy) and a duration class
(1..duration_classes steps), both read from the hidden state plus the emitted pitch and both
*sampled* from their distributions at inference. Generation runs every step of the window as
one batch, with a KV cache (`use_cache=False` recomputes the prefix: same output).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.components.fractal_blocks import (
    ChromaTokens,
    FractalBlock,
    ParentConditioner,
    with_chroma,
)
from lightning_modules.components.fractal_summary import class_velocity, velocity_class
from lightning_modules.sampling import build_processors, sample_next


class PitchTransformerOutputProj(nn.Module):
    def __init__(self, n_pitches: int, parent_dim: int, parent_unit: int, d_model: int = 1024,
                 n_layers: int = 2, n_heads: int = 1, d_ff: int | None = None, max_notes: int = 12,
                 velocity_bins: int = 32, duration_classes: int = 16, context_k: int = 1,
                 cross_window: int | None = 4, dropout: float = 0.1, max_sequences: int | None = None,
                 name: str = "notes", **_unused):
        super().__init__()
        self.name, self.n_pitches, self.max_notes = name, n_pitches, max_notes
        self.velocity_bins, self.duration_classes = velocity_bins, duration_classes
        self.end_id, self.bos_id = n_pitches, n_pitches + 1
        self.max_sequences = max_sequences  # train on a random subset of steps per batch (speed)
        self.d_model = d_model
        self.conditioner = ParentConditioner(parent_dim, d_model, parent_unit, context_k, cross_window,
                                             patch_scope=True)
        self.chroma = ChromaTokens(d_model)
        self.pitch_in = nn.Embedding(n_pitches + 2, d_model)
        self.velocity_in = nn.Embedding(velocity_bins + 1, d_model)  # 0 = none (BOS)
        self.duration_in = nn.Embedding(duration_classes + 1, d_model)
        self.position = nn.Embedding(max_notes + 1, d_model)
        self.blocks = nn.ModuleList(FractalBlock(d_model, n_heads, d_ff or 2 * d_model, dropout, causal=True,
                                                 max_relative_distance=max_notes + 1) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.pitch_head = nn.Linear(d_model, n_pitches + 1)
        self.emitted = nn.Embedding(n_pitches + 1, d_model)
        self.velocity_head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, velocity_bins))
        self.duration_head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, duration_classes))

    # ---- step sequences ----------------------------------------------------------------------
    def step_sequences(self, velocity: torch.Tensor, duration: torch.Tensor):
        """(N, P) rows -> inputs (pitch, vel, dur) and targets (pitch, vel, dur), each (N, L)."""
        n, p = velocity.shape
        onset = velocity > 0
        ids = torch.where(onset, torch.arange(p, device=velocity.device), p + 1)
        order = ids.sort(1).values[:, :self.max_notes]  # ascending pitches, then fillers
        count = onset.sum(1).clamp(max=self.max_notes)
        length = int(count.max()) + 1
        pos = torch.arange(length, device=velocity.device)[None]
        pitch = torch.full((n, length), -100, dtype=torch.long, device=velocity.device)
        notes = order[:, :length]
        pitch[:, :notes.size(1)] = notes
        pitch = torch.where(pos < count[:, None], pitch, -100)
        pitch = torch.where(pos == count[:, None], self.end_id, pitch)
        safe = pitch.clamp(0, p - 1)
        vel = velocity_class(velocity.gather(1, safe), self.velocity_bins)
        dur = (duration.gather(1, safe).clamp(1, self.duration_classes) - 1)
        is_note = pos < count[:, None]
        t_vel, t_dur = torch.where(is_note, vel, -100), torch.where(is_note, dur, -100)
        bos = torch.full((n, 1), self.bos_id, dtype=torch.long, device=velocity.device)
        in_pitch = torch.cat([bos, pitch.clamp(min=0)[:, :-1]], 1)
        in_vel = torch.cat([torch.zeros_like(bos), (t_vel + 1).clamp(min=0)[:, :-1]], 1)
        in_dur = torch.cat([torch.zeros_like(bos), (t_dur + 1).clamp(min=0)[:, :-1]], 1)
        return (in_pitch, in_vel, in_dur), (pitch, t_vel, t_dur)

    def embed(self, pitch, vel, dur, offset: int = 0) -> torch.Tensor:
        pos = torch.arange(offset, offset + pitch.size(1), device=pitch.device)
        return self.pitch_in(pitch) + self.velocity_in(vel) + self.duration_in(dur) + self.position(pos)[None]

    def forward(self, x: torch.Tensor, cond: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                past: list | None = None) -> tuple[torch.Tensor, list]:
        """x (N, L, C) embedded inputs, cond (N, 1, C) -> hidden (N, L, C) and the per-layer cache."""
        x = x + cond
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, memory, mask, past[i] if past else None)
            caches.append(cache)
        return self.norm(x), caches

    def note_heads(self, h: torch.Tensor, pitch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity and duration logits of the emitted pitch (teacher-forced in training)."""
        z = h + self.emitted(pitch.clamp(0, self.n_pitches))
        return self.velocity_head(z), self.duration_head(z)

    def condition(self, parent: torch.Tensor, chroma: torch.Tensor):
        cond, memory, mask = self.conditioner(parent)  # cond (B, T, C), memory per parent token
        b, t = cond.shape[:2]
        if self.conditioner.group > 1:  # one sequence per step: each step gets its parent's memory
            memory = memory.repeat_interleave(self.conditioner.group, 0)
            mask = None if mask is None else mask.repeat_interleave(self.conditioner.group, 0)
        memory, mask = with_chroma(memory, mask, self.chroma(chroma).repeat_interleave(t, 0))
        return cond.reshape(b * t, 1, -1), memory, mask

    # ---- training ----------------------------------------------------------------------------
    def train_level(self, velocity: torch.Tensor, duration: torch.Tensor, chroma: torch.Tensor,
                    parent: torch.Tensor) -> tuple[torch.Tensor, None]:
        b, t, p = velocity.shape
        cond, memory, mask = self.condition(parent, chroma)
        rows_v, rows_d = velocity.reshape(b * t, p), duration.reshape(b * t, p)
        if self.max_sequences and b * t > self.max_sequences:
            keep = torch.randperm(b * t, device=velocity.device)[: self.max_sequences]
            rows_v, rows_d, cond, memory, mask = rows_v[keep], rows_d[keep], cond[keep], memory[keep], mask[keep]
        inputs, (t_pitch, t_vel, t_dur) = self.step_sequences(rows_v, rows_d)
        h, _ = self(self.embed(*inputs), cond, memory, mask)
        v_logits, d_logits = self.note_heads(h, t_pitch)
        loss = F.cross_entropy(self.pitch_head(h).flatten(0, 1), t_pitch.flatten(), ignore_index=-100)
        loss = loss + F.cross_entropy(v_logits.flatten(0, 1), t_vel.flatten(), ignore_index=-100)
        return loss + F.cross_entropy(d_logits.flatten(0, 1), t_dur.flatten(), ignore_index=-100), None

    # ---- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def sample_level(self, chroma: torch.Tensor, parent: torch.Tensor, n_tokens: int,
                     reference: dict[str, torch.Tensor] | None = None, regenerate: torch.Tensor | None = None,
                     temperature: float = 1.0, top_p: float | None = None,
                     generator: torch.Generator | None = None, progress=None, use_cache: bool = True
                     ) -> tuple[dict[str, torch.Tensor], None]:
        """-> ({velocity, duration}: (B, T, P) long), None. Steps not in `regenerate` (B, T)
        are copied from `reference`."""
        b, dev, p = chroma.size(0), chroma.device, self.n_pitches
        cond, memory, mask = self.condition(parent, chroma)
        out_v = torch.zeros(b * n_tokens, p, dtype=torch.long, device=dev)
        out_d = torch.zeros_like(out_v)
        todo = torch.ones(b * n_tokens, dtype=torch.bool, device=dev) if regenerate is None \
            else regenerate.reshape(-1)
        if reference is not None:
            out_v[~todo] = reference["velocity"].reshape(-1, p)[~todo]
            out_d[~todo] = reference["duration"].reshape(-1, p)[~todo]
        rows = torch.nonzero(todo).flatten()
        if rows.numel():
            v, d = self.sample_steps(cond[rows], memory[rows], mask[rows], temperature, top_p, generator,
                                     progress, use_cache)
            out_v[rows], out_d[rows] = v, d
        return {"velocity": out_v.view(b, n_tokens, p), "duration": out_d.view(b, n_tokens, p)}, None

    @torch.no_grad()
    def sample_steps(self, cond, memory, mask, temperature: float = 1.0, top_p: float | None = None,
                     generator: torch.Generator | None = None, progress=None, use_cache: bool = True):
        """Sample N step sequences -> velocity, duration (N, P) long."""
        n, dev, p = cond.size(0), cond.device, self.n_pitches
        procs = build_processors(temperature, None, top_p)
        plain = build_processors(temperature)
        pitch = torch.full((n, 1), self.bos_id, dtype=torch.long, device=dev)
        vel_in, dur_in = torch.zeros_like(pitch), torch.zeros_like(pitch)
        velocity, duration = torch.zeros(n, p, dtype=torch.long, device=dev), torch.zeros(n, p, dtype=torch.long, device=dev)
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        last = torch.full((n,), -1, dtype=torch.long, device=dev)
        past = None
        for k in range(self.max_notes + 1):
            if use_cache:
                x = self.embed(pitch[:, -1:], vel_in[:, -1:], dur_in[:, -1:], offset=k)
                h, past = self(x, cond, memory, mask, past)
            else:
                h, _ = self(self.embed(pitch, vel_in, dur_in), cond, memory, mask)
            h = h[:, -1]  # (N, C)
            logits = self.pitch_head(h)  # (N, P + 1)
            ids = torch.arange(p + 1, device=dev)[None]
            allowed = (ids > last[:, None]) & (ids < p) | (ids == self.end_id)  # ascending, or END
            if k == self.max_notes:
                allowed = ids == self.end_id
            nxt = sample_next(logits.masked_fill(~allowed, float("-inf")), procs, generator)
            nxt = torch.where(done, torch.full_like(nxt, self.end_id), nxt)
            v_logits, d_logits = self.note_heads(h, nxt)
            v_cls = sample_next(v_logits, plain, generator)
            d_cls = sample_next(d_logits, plain, generator)
            is_note = (nxt != self.end_id) & ~done
            rows = torch.nonzero(is_note).flatten()
            velocity[rows, nxt[rows]] = class_velocity(v_cls[rows], self.velocity_bins)
            duration[rows, nxt[rows]] = d_cls[rows] + 1
            done |= nxt == self.end_id
            last = torch.where(is_note, nxt, last)
            pitch = torch.cat([pitch, nxt[:, None]], 1)
            vel_in = torch.cat([vel_in, (v_cls + 1)[:, None]], 1)
            dur_in = torch.cat([dur_in, (d_cls + 1)[:, None]], 1)
            if progress:
                progress(self.name, k + 1, self.max_notes + 1)
            if bool(done.all()):
                break
        return velocity, duration
