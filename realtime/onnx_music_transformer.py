"""Cache-in / cache-out view of the Music Transformer's `MusicTransformer` net, for ONNX export.

Same graph contract as realtime.onnx_backend.ExportableDecoder: `ids (1, T)` and the caches
`past_k`/`past_v (L, 1, H, P, D)` in; the last position's logits (1, V) and the caches extended
to P + T out; T and P dynamic (P may be 0), one graph for prefill and single steps.

The eager layer (lightning_modules.components.relative_attention) picks paths by shape (a
one-query gather, SDPA, a mask only when Tq > 1), which a tracer would freeze at the example's
shapes. Here every step is written for any T and P: the relative logits always go through the
skew (pad one column, flatten, drop the first T entries, read as (T, P + T)), which is exact on
the visible entries for T = 1 too, and the causal mask is arithmetic on positions. Shares the
net's parameters; the parity test checks it against the eager net with and without a cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realtime.onnx_backend import ExportableDecoder


class ExportableMusicTransformer(ExportableDecoder):
    def __init__(self, net: nn.Module):
        super().__init__(net)
        self.relative = bool(getattr(net, "relative", True))

    def _embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.net.tok_emb(ids)  # (1, T, C)
        if self.net.pos_emb is not None:  # relative=false: learned absolute positions
            x = x + self.net.pos_emb(positions)
        return x

    def _position_scores(self, attn: nn.Module, q: torch.Tensor, keys: torch.Tensor, t, p) -> torch.Tensor | None:
        if not self.relative:
            return None
        # table rows of the distances P+T-1, ..., 0 (left to right), clipped like the eager layer
        rows = ((p + t - 1) - keys).clamp(max=attn.max_relative_distance - 1)  # (P + T,)
        qe = q @ attn.rel_emb[:, rows].transpose(-2, -1)  # (1, H, T, P + T) by distance
        return self._skew(qe, t, p + t)

    @staticmethod
    def _skew(qe: torch.Tensor, tq, tk) -> torch.Tensor:
        """relative_attention.skew with the sizes passed in (traced as dynamic dims)."""
        padded = F.pad(qe, (1, 0))  # (1, H, Tq, Tk + 1)
        flat = padded.reshape(1, qe.shape[1], -1)  # (1, H, Tq * (Tk + 1))
        return flat[:, :, tq:].reshape(1, qe.shape[1], tq, tk)  # (1, H, Tq, Tk)
