"""PercePiano / VirtuosoNet encoders as pure nn blocks: ContextAttention, the hierarchical
attention network (note -> voice -> beat -> measure) and the 7-layer Bi-LSTM baseline.

Batches are padded (B, T, F) tensors with `lengths`; every LSTM runs as a PackedSequence would
(`lstm_runner.py`: the fused padded path by default, `lstm_impl: packed` for nn.utils.rnn packing),
so the padding never enters a recurrence. Hierarchy indices (beat, measure, voice) are dense per
sequence (0..n-1) and -1 on padding.
"""
from __future__ import annotations

import torch
from torch import nn

from lightning_modules.components.lstm_runner import (  # re-exported
    check_impl,
    run_lstm,
    run_per_group,
)

N_LABELS = 19


class ContextAttention(nn.Module):
    """Linear(size, size) -> tanh -> split into heads -> dot with a learnable context vector per
    head (init uniform(-1, 1)) -> softmax over time (padding masked) -> per-head weighted sum of
    the input, heads concatenated back to `size`."""

    def __init__(self, size: int, num_head: int):
        super().__init__()
        if size % num_head:
            raise ValueError(f"ContextAttention: size {size} is not divisible by num_head {num_head}")
        self.attention_net = nn.Linear(size, size)
        self.num_head, self.head_size = num_head, size // num_head
        self.context_vector = nn.Parameter(torch.empty(num_head, self.head_size))
        nn.init.uniform_(self.context_vector, a=-1, b=1)
        # the latest softmax weights (B, T, H) and, for grouped attention, the groups (B, T): diagnostics
        self.last_weights: torch.Tensor | None = None
        self.last_groups: torch.Tensor | None = None

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """(..., T, size) -> (..., T, H) similarity of each step with each head's context vector."""
        split = torch.tanh(self.attention_net(x)).unflatten(-1, (self.num_head, self.head_size))
        return (split * self.context_vector).sum(-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, group: torch.Tensor | None = None,
                n_groups: int | None = None) -> torch.Tensor:
        """x (B, T, size), mask (B, T) True on real steps -> (B, size); or, given `group` (B, T),
        one summary per group: (B, n_groups, size) (see `grouped`)."""
        if group is not None:
            return self.grouped(x, group, n_groups if n_groups is not None else int(group.max()) + 1)
        sim = self.scores(x)  # (B, T, H)
        if mask is not None:
            sim = sim.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        weights = torch.softmax(sim, dim=1)  # (B, T, H)
        self.last_weights, self.last_groups = weights.detach(), None
        heads = x.unflatten(-1, (self.num_head, self.head_size))  # (B, T, H, d)
        return (heads * weights.unsqueeze(-1)).sum(1).flatten(-2)

    def grouped(self, x: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
        """Attention inside groups: x (B, T, size), group (B, T) in 0..n_groups-1 or -1 (padding)
        -> (B, n_groups, size), one summary per group (beat or measure nodes)."""
        B = x.shape[0]
        valid = group >= 0
        g = group.clamp(min=0)
        sim = self.scores(x).masked_fill(~valid.unsqueeze(-1), float("-inf"))  # (B, T, H)
        idx = g.unsqueeze(-1).expand(-1, -1, self.num_head)
        gmax = torch.full((B, n_groups, self.num_head), float("-inf"), device=x.device, dtype=x.dtype)
        gmax = gmax.scatter_reduce(1, idx, sim, reduce="amax", include_self=True)
        ex = torch.exp(sim - gmax.gather(1, idx)).masked_fill(~valid.unsqueeze(-1), 0.0)
        denom = torch.zeros_like(gmax).scatter_add(1, idx, ex)
        weights = ex / denom.gather(1, idx).clamp_min(1e-12)  # (B, T, H), sums to 1 per group
        self.last_weights = weights.detach()
        self.last_groups = group.detach()
        heads = x.unflatten(-1, (self.num_head, self.head_size)) * weights.unsqueeze(-1)  # (B, T, H, d)
        flat = heads.flatten(-2)  # (B, T, size)
        out = torch.zeros(B, n_groups, flat.shape[-1], device=x.device, dtype=x.dtype)
        return out.scatter_add(1, g.unsqueeze(-1).expand_as(flat), flat * valid.unsqueeze(-1))


def bilstm(input_size: int, hidden: int, layers: int, dropout: float) -> nn.LSTM:
    return nn.LSTM(input_size, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                   dropout=dropout if layers > 1 else 0.0)


def span_to_notes(nodes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """nodes (B, G, D), index (B, T) -> (B, T, D) each note's node (zeros on padding)."""
    out = nodes.gather(1, index.clamp(min=0).unsqueeze(-1).expand(-1, -1, nodes.shape[-1]))
    return out * (index >= 0).unsqueeze(-1)


def group_parent(child: torch.Tensor, parent: torch.Tensor, n_children: int) -> torch.Tensor:
    """(B, T) beat and measure index per note -> (B, n_children) measure of each beat (-1 if none)."""
    B = child.shape[0]
    out = torch.full((B, n_children), -1, dtype=torch.long, device=child.device)
    valid = child >= 0
    return out.scatter_reduce(1, child.clamp(min=0), torch.where(valid, parent, -1), reduce="amax")


class PerformanceHead(nn.Sequential):
    """Dropout -> Linear(size, size) -> GELU -> Dropout -> Linear(size, 19): raw logits."""

    def __init__(self, size: int = 512, n_out: int = N_LABELS, dropout: float = 0.2):
        super().__init__(nn.Dropout(dropout), nn.Linear(size, size), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(size, n_out))


class HANEncoder(nn.Module):
    """The published PercePiano HAN: per-note states (note, voice, beat, measure) -> 2048 ->
    contractor 512 -> final ContextAttention over notes -> head -> 19 logits."""

    def __init__(self, input_size: int, note_size: int = 256, hidden: int = 256, note_layers: int = 2,
                 voice_layers: int = 2, beat_layers: int = 2, measure_layers: int = 1,
                 num_attention_head: int = 8, final_heads: int = 8, contracted: int = 512,
                 dropout: float = 0.2, n_out: int = N_LABELS, lstm_impl: str = "padded"):
        super().__init__()
        self.lstm_impl = check_impl(lstm_impl)
        self.note_fc = nn.Sequential(nn.Linear(input_size, note_size), nn.Dropout(dropout), nn.ReLU())
        self.note_lstm = bilstm(note_size, hidden, note_layers, dropout)
        self.voice_lstm = bilstm(note_size, hidden, voice_layers, dropout)
        self.beat_attention = ContextAttention(4 * hidden, num_attention_head)
        self.beat_lstm = bilstm(4 * hidden, hidden, beat_layers, dropout)
        self.measure_attention = ContextAttention(2 * hidden, num_attention_head)
        self.measure_lstm = bilstm(2 * hidden, hidden, measure_layers, dropout)
        self.performance_contractor = nn.Linear(8 * hidden, contracted)
        self.final_attention = ContextAttention(contracted, final_heads)
        self.head = PerformanceHead(contracted, n_out, dropout)

    def note_states(self, x, lengths, beat, measure, voice) -> torch.Tensor:
        """(B, T, 2048): note, voice, beat and measure states of each note."""
        h = self.note_fc(x)                                       # (B, T, 256)
        note = run_lstm(self.note_lstm, h, lengths, self.lstm_impl)             # (B, T, 512)
        voice_out = run_per_group(self.voice_lstm, h, voice, self.lstm_impl)    # (B, T, 512)
        note_voice = torch.cat([note, voice_out], -1)             # (B, T, 1024)
        n_beats = int(beat.max().item()) + 1
        beat_nodes = self.beat_attention(note_voice, group=beat, n_groups=n_beats)     # (B, nb, 1024)
        beat_len = beat.max(1).values + 1
        beat_out = run_lstm(self.beat_lstm, beat_nodes, beat_len, self.lstm_impl)             # (B, nb, 512)
        beat_measure = group_parent(beat, measure, n_beats)                     # (B, nb)
        beat_measure = torch.where(torch.arange(n_beats, device=x.device) < beat_len.unsqueeze(1),
                                   beat_measure, -1)
        n_measures = int(measure.max().item()) + 1
        measure_nodes = self.measure_attention(beat_out, group=beat_measure, n_groups=n_measures)  # (B, nm, 512)
        measure_len = measure.max(1).values + 1
        measure_out = run_lstm(self.measure_lstm, measure_nodes, measure_len, self.lstm_impl)  # (B, nm, 512)
        return torch.cat([note_voice, span_to_notes(beat_out, beat), span_to_notes(measure_out, measure)], -1)

    def forward(self, x, lengths, beat, measure, voice) -> torch.Tensor:
        states = self.note_states(x, lengths, beat, measure, voice)           # (B, T, 2048)
        mask = torch.arange(x.shape[1], device=x.device) < lengths.to(x.device).unsqueeze(1)
        pooled = self.final_attention(self.performance_contractor(states), mask)  # (B, 512)
        return self.head(pooled)                                              # (B, 19)


class VirtuosoNetSingle(nn.Module):
    """The baseline: one 7-layer Bi-LSTM (as deep as the HAN's 2+2+2+1) -> Linear(512, 512) ->
    ContextAttention(512, 8) -> the same head. No hierarchy: beat/measure/voice are ignored."""

    def __init__(self, input_size: int, note_size: int = 256, hidden: int = 256, layers: int = 7,
                 final_heads: int = 8, contracted: int = 512, dropout: float = 0.2, n_out: int = N_LABELS,
                 lstm_impl: str = "padded"):
        super().__init__()
        self.lstm_impl = check_impl(lstm_impl)
        self.note_fc = nn.Sequential(nn.Linear(input_size, note_size), nn.Dropout(dropout), nn.ReLU())
        self.lstm = bilstm(note_size, hidden, layers, dropout)
        self.performance_contractor = nn.Linear(2 * hidden, contracted)
        self.final_attention = ContextAttention(contracted, final_heads)
        self.head = PerformanceHead(contracted, n_out, dropout)

    def forward(self, x, lengths, beat=None, measure=None, voice=None) -> torch.Tensor:
        states = run_lstm(self.lstm, self.note_fc(x), lengths, self.lstm_impl)              # (B, T, 512)
        mask = torch.arange(x.shape[1], device=x.device) < lengths.to(x.device).unsqueeze(1)
        return self.head(self.final_attention(self.performance_contractor(states), mask))
