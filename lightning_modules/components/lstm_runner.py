"""Running (Bi-)LSTMs over padded variable-length batches, exactly as a PackedSequence would.

Two implementations with the same result (zeros on padding; tests/percepiano/test_lstm_runner.py
compares them on a real PercePiano batch, forward and gradients):

* `packed`: `pack_padded_sequence` -> nn.LSTM -> `pad_packed_sequence`. On CPU, PyTorch runs a
  packed LSTM as one autograd graph of per-time-step ops, so the backward pass does a tiny
  weight-gradient matmul and a 1024x256 accumulation per step and layer (the profile of a HAN
  step: `aten::mm`/`addmm`/`add_` over ~3000 calls each).
* `padded` (default): one layer and one direction at a time on the padded tensor, which takes the
  fused oneDNN LSTM kernel (forward and backward). The forward direction reads padding only after
  each sequence's last real step; the backward direction runs on each sequence reversed *within
  its length* (padding stays at the end), so padding never reaches a real step either way. Same
  numbers as `packed` up to float rounding; 1.6-2.1x faster per training step on CPU
  (bench/percepiano_step_speed.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence

LSTM_IMPLS = ("padded", "packed")


def check_impl(impl: str) -> str:
    if impl not in LSTM_IMPLS:
        raise ValueError(f"lstm_impl={impl!r}: choose one of {LSTM_IMPLS} (model.net.lstm_impl)")
    return impl


def run_lstm_packed(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, F) padded -> (B, T, D*H) through a packed sequence (zeros on padding)."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def reverse_within_length(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) time index reversing each sequence's real steps, padding in place
    (an involution: applying it twice gives the identity)."""
    t = torch.arange(T, device=lengths.device).expand(len(lengths), T)  # (B, T)
    L = lengths.unsqueeze(1)
    return torch.where(t < L, L - 1 - t, t)


def _layer_params(lstm: nn.LSTM, layer: int, suffix: str) -> list[torch.Tensor]:
    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if lstm.bias else ())
    return [getattr(lstm, f"{n}_l{layer}{suffix}") for n in names]


def length_buckets(lengths: list[int], ratio: float = 0.6) -> list[list[int]]:
    """Sequence indices sorted longest first, cut into buckets whose lengths stay above `ratio` x
    the bucket's longest: few calls, little padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    buckets: list[list[int]] = []
    for i in order:
        if buckets and lengths[i] >= ratio * lengths[buckets[-1][0]]:
            buckets[-1].append(i)
        else:
            buckets.append([i])
    return buckets


def _fused_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, F) -> (B, T, D*H), outputs past each length undefined; one fused call per layer and
    direction, the backward direction on sequences reversed within their lengths."""
    B, T, _ = x.shape
    rev = reverse_within_length(lengths, T).unsqueeze(-1)  # (B, T, 1)
    h0 = x.new_zeros(1, B, lstm.hidden_size)
    out = x
    for layer in range(lstm.num_layers):
        dirs = []
        for suffix in ("", "_reverse")[: 1 + lstm.bidirectional]:
            inp = out if not suffix else out.gather(1, rev.expand(-1, -1, out.shape[-1]))
            y = torch.lstm(inp, (h0, h0), _layer_params(lstm, layer, suffix), lstm.bias, 1, 0.0,
                           lstm.training, False, True)[0]  # (B, T, H)
            dirs.append(y if not suffix else y.gather(1, rev.expand(-1, -1, y.shape[-1])))
        out = torch.cat(dirs, -1)  # (B, T, D*H)
        if lstm.dropout and lstm.training and layer < lstm.num_layers - 1:
            out = F.dropout(out, lstm.dropout, training=True)
    return out


def run_lstm_padded(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Same as `run_lstm_packed`: sequences bucketed by length (`length_buckets`), each bucket cut
    to its longest sequence and run through the fused kernel, outputs put back in batch order."""
    if lstm.proj_size or not lstm.batch_first:
        raise ValueError("run_lstm_padded supports batch_first LSTMs without projections")
    T = x.shape[1]
    lengths = lengths.to(x.device)
    buckets = length_buckets(lengths.tolist())
    parts = []
    for idx in buckets:
        sel = torch.tensor(idx, device=x.device)
        L = int(lengths[idx[0]])
        y = _fused_lstm(lstm, x[sel, :L], lengths[sel])  # (b, L, D*H)
        parts.append(F.pad(y, (0, 0, 0, T - L)))
    out = torch.cat(parts)[torch.argsort(torch.tensor([i for idx in buckets for i in idx], device=x.device))]
    real = torch.arange(T, device=x.device) < lengths.unsqueeze(1)  # (B, T)
    return out * real.unsqueeze(-1)  # (B, T, D*H), zeros on padding


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor, impl: str = "padded") -> torch.Tensor:
    """(B, T, F) padded with `lengths` -> (B, T, D*H), zeros on padding."""
    return (run_lstm_padded if check_impl(impl) == "padded" else run_lstm_packed)(lstm, x, lengths)


def run_per_group(lstm: nn.LSTM, x: torch.Tensor, group: torch.Tensor, impl: str = "padded") -> torch.Tensor:
    """Run `lstm` over each (sequence, group) subsequence in time order, scatter outputs back:
    x (B, T, F), group (B, T) voice index (-1 on padding) -> (B, T, D*H)."""
    B, T, _ = x.shape
    valid = group >= 0
    n = int(group.max().item()) + 1 if valid.any() else 1
    key = torch.arange(B, device=x.device).unsqueeze(1) * n + group.clamp(min=0)  # (B, T)
    key = torch.where(valid, key, torch.full_like(key, B * n))  # padding sorts last
    pos = torch.arange(T, device=x.device).expand(B, T)
    order = torch.argsort(key.flatten() * T + pos.flatten())
    flat_x, flat_key = x.flatten(0, 1)[order], key.flatten()[order]
    keep = flat_key < B * n
    flat_x, flat_key, order = flat_x[keep], flat_key[keep], order[keep]  # (N, F) grouped, in time order
    counts = torch.unique_consecutive(flat_key, return_counts=True)[1]  # (G,)
    rows = torch.repeat_interleave(torch.arange(len(counts), device=x.device), counts)  # (N,) group
    starts = torch.cumsum(counts, 0) - counts
    cols = torch.arange(len(flat_x), device=x.device) - starts[rows]  # (N,) position in its group
    if check_impl(impl) == "packed":
        out, _ = lstm(pack_sequence(list(torch.split(flat_x, counts.tolist())), enforce_sorted=False))
        padded = pad_packed_sequence(out, batch_first=True)[0]  # (G, L, D*H)
    else:
        grouped = x.new_zeros(len(counts), int(counts.max()), x.shape[-1])  # (G, L, F)
        grouped = grouped.index_put((rows, cols), flat_x)
        padded = run_lstm_padded(lstm, grouped, counts)  # (G, L, D*H)
    result = x.new_zeros(B * T, padded.shape[-1])
    result = result.index_put((order,), padded[rows, cols])
    return result.view(B, T, -1)
