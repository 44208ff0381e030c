"""Gradient norms per parameter group every N steps, with balance and explosion/vanishing flags.

Groups are parameter-name prefixes of `depth` components (net.note_lstm, net.head, ...). Logs
grad/<group>, grad/total, grad/balance (largest / smallest non-zero group norm), and counts of
steps flagged exploding (total > explode_norm) or vanishing (a group < vanish_norm). Measured
before clipping (on_before_optimizer_step sees the raw gradients when clipping happens later).
"""
from __future__ import annotations

import logging
from collections import defaultdict

import lightning as L
import torch

log = logging.getLogger(__name__)


class GradientMonitor(L.Callback):
    def __init__(self, every_n_steps: int = 50, depth: int = 2, explode_norm: float = 100.0,
                 vanish_norm: float = 1e-7):
        self.every, self.depth = every_n_steps, depth
        self.explode_norm, self.vanish_norm = explode_norm, vanish_norm
        self.history: list[dict[str, float]] = []
        self.flags = {"exploding": 0, "vanishing": 0}

    def group_norms(self, module: torch.nn.Module) -> dict[str, float]:
        sq = defaultdict(float)
        for name, p in module.named_parameters():
            if p.grad is not None:
                sq[".".join(name.split(".")[: self.depth])] += float(p.grad.detach().float().pow(2).sum())
        return {g: v ** 0.5 for g, v in sq.items()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step % self.every:
            return
        norms = self.group_norms(pl_module)
        if not norms:
            return
        total = sum(v ** 2 for v in norms.values()) ** 0.5
        nonzero = [v for v in norms.values() if v > 0]
        balance = max(nonzero) / min(nonzero) if nonzero else float("inf")
        vanishing = [g for g, v in norms.items() if v < self.vanish_norm]
        if total > self.explode_norm:
            self.flags["exploding"] += 1
            log.warning("gradient monitor: step %d total grad norm %.3g > %g", trainer.global_step, total,
                        self.explode_norm)
        if vanishing:
            self.flags["vanishing"] += 1
            log.warning("gradient monitor: step %d vanishing gradients in %s", trainer.global_step, vanishing)
        row = {"step": trainer.global_step, "total": total, "balance": balance, **norms}
        self.history.append(row)
        pl_module.log_dict({"grad/total": total, "grad/balance": balance,
                            "grad/exploding_steps": float(self.flags["exploding"]),
                            "grad/vanishing_steps": float(self.flags["vanishing"]),
                            **{f"grad/{g}": v for g, v in norms.items()}}, rank_zero_only=True)
