"""Attention entropy per attention module on the first validation batch of every epoch.

Works with any module that either keeps `last_weights` after its forward (ContextAttention:
(B, T, H) weights, plus `last_groups` (B, T) when it attended inside beats/measures), or is a
self-attention with `query`/`key` Linears and `n_heads` (CausalSelfAttention: the weights are
recomputed from its input, causal mask included). Entropy is normalised by log(#keys), so 1 is
uniform attention and 0 attends to one step; logged as attn_entropy/<module name>.
"""
from __future__ import annotations

import logging
import math

import lightning as L
import torch

log = logging.getLogger(__name__)


def normalised_entropy(weights: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean over everything but `dim` of H(weights)/log(#nonzero keys), rows with 1 key skipped."""
    w = weights.float()
    h = -(w * torch.log(w.clamp_min(1e-12))).sum(dim)
    n = (w > 0).sum(dim).float()
    ok = n > 1
    return (h[ok] / torch.log(n[ok])).mean() if ok.any() else torch.tensor(float("nan"))


def grouped_entropy(weights: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Entropy of attention inside each group: weights (B, T, H), groups (B, T) (-1 = padding)."""
    B, T, H = weights.shape
    valid = groups >= 0
    n_groups = int(groups.max()) + 1 if valid.any() else 1
    idx = groups.clamp(min=0).unsqueeze(-1).expand(-1, -1, H)
    w = weights.float() * valid.unsqueeze(-1)
    h = torch.zeros(B, n_groups, H).scatter_add(1, idx, -(w * torch.log(w.clamp_min(1e-12))))
    size = torch.zeros(B, n_groups).scatter_add(1, groups.clamp(min=0), valid.float())
    ok = size > 1
    return (h[ok] / torch.log(size[ok]).unsqueeze(-1)).mean() if ok.any() else torch.tensor(float("nan"))


def self_attention_weights(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, T) causal softmax(q k^T / sqrt(d)) of a query/key self-attention on input x."""
    B, T, C = x.shape
    h = module.n_heads
    q = module.query(x).view(B, T, h, C // h).transpose(1, 2)
    k = module.key(x).view(B, T, h, C // h).transpose(1, 2)
    att = q @ k.transpose(-2, -1) / math.sqrt(C // h)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    return att.masked_fill(~causal, float("-inf")).softmax(-1)


def is_attention(module: torch.nn.Module) -> bool:
    return hasattr(module, "last_weights") or all(hasattr(module, a) for a in ("query", "key", "n_heads"))


class AttentionEntropy(L.Callback):
    def __init__(self):
        self.history: list[dict[str, float]] = []
        self._handles, self._current = [], {}

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if batch_idx != 0 or trainer.sanity_checking:
            return
        self._current = {}
        for name, module in pl_module.named_modules():
            if name and is_attention(module):
                self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def read(module, inputs, _output):
            with torch.no_grad():
                if hasattr(module, "last_weights") and module.last_weights is not None:
                    groups = getattr(module, "last_groups", None)
                    w = module.last_weights
                    value = grouped_entropy(w, groups) if groups is not None and groups.shape == w.shape[:2] \
                        else normalised_entropy(w, dim=1)
                else:
                    value = normalised_entropy(self_attention_weights(module, inputs[0]), dim=-1)
                self._current.setdefault(name, []).append(float(value))
        return read

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not self._handles:
            return
        for h in self._handles:
            h.remove()
        self._handles = []
        row = {name: sum(v) / len(v) for name, v in self._current.items()}
        if not row:
            log.info("attention entropy: %s has no attention modules", type(pl_module).__name__)
            return
        self.history.append({"epoch": trainer.current_epoch, **row})
        pl_module.log_dict({f"attn_entropy/{k}": v for k, v in row.items()}, rank_zero_only=True)
