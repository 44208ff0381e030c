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


class ExportableMusicTransformer(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()
        attn = net.blocks[0].attn
        self.n_layers, self.n_heads, self.head_dim = len(net.blocks), attn.n_heads, attn.head_dim
        self.relative = bool(getattr(net, "relative", True))

    def forward(self, ids: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor):
        net = self.net
        t, p = ids.shape[1], past_k.shape[3]
        positions = torch.arange(t, device=ids.device) + p  # (T,) absolute positions of the queries
        keys = torch.arange(p + t, device=ids.device)  # (P + T,)
        x = net.tok_emb(ids)  # (1, T, C)
        if net.pos_emb is not None:  # relative=false: learned absolute positions
            x = x + net.pos_emb(positions)
        blocked = keys[None, :] > positions[:, None]  # (T, P + T): the future is masked
        mask = torch.zeros(blocked.shape, dtype=x.dtype).masked_fill(blocked, float("-inf"))
        # table rows of the distances P+T-1, ..., 0 (left to right), clipped like the eager layer
        distances = (p + t - 1) - keys  # (P + T,)
        scale = self.head_dim**-0.5
        new_k, new_v = [], []
        for i, block in enumerate(net.blocks):
            attn = block.attn
            h = block.norm1(x)
            q, k, v = (
                self._heads(lin(h)) for lin in (attn.query, attn.key, attn.value)
            )  # (1, H, T, D)
            k, v = (
                torch.cat([past_k[i], k], dim=2),
                torch.cat([past_v[i], v], dim=2),
            )  # (1, H, P+T, D)
            scores = q @ k.transpose(-2, -1)  # (1, H, T, P + T)
            if self.relative:
                rows = distances.clamp(max=attn.max_relative_distance - 1)
                qe = q @ attn.rel_emb[:, rows].transpose(-2, -1)  # (1, H, T, P + T) by distance
                scores = scores + self._skew(qe, t, p + t)
            scores = scores * scale + mask
            y = scores.softmax(-1) @ v  # (1, H, T, D)
            x = x + attn.out(y.transpose(1, 2).reshape(1, t, -1))
            x = x + block.ff(block.norm2(x))
            new_k.append(k)
            new_v.append(v)
        logits = net.head(net.norm(x[:, -1]))  # (1, V)
        return logits, torch.stack(new_k), torch.stack(new_v)

    @staticmethod
    def _skew(qe: torch.Tensor, tq, tk) -> torch.Tensor:
        """relative_attention.skew with the sizes passed in (traced as dynamic dims)."""
        padded = F.pad(qe, (1, 0))  # (1, H, Tq, Tk + 1)
        flat = padded.reshape(1, qe.shape[1], -1)  # (1, H, Tq * (Tk + 1))
        return flat[:, :, tq:].reshape(1, qe.shape[1], tq, tk)  # (1, H, Tq, Tk)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(1, -1, self.n_heads, self.head_dim).transpose(1, 2)

    def empty_cache(self) -> torch.Tensor:
        return torch.zeros(self.n_layers, 1, self.n_heads, 0, self.head_dim)
