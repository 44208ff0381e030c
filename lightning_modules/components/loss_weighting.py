"""Combine several task losses into one: fixed weights, uncertainty weighting (Kendall et al.
2018), Dynamic Weight Averaging (Liu et al. 2019) and GradNorm (Chen et al. 2018).

Pure modules, usable by any multi-loss family:

    weighting = UncertaintyWeighting(n_losses=4)
    total, info = weighting(torch.stack(losses), shared_params=[...])  # info: weights (and sigmas)
    weighting.observe(losses)            # every step (DWA keeps epoch means)
    weighting.on_epoch_end()             # DWA: new weights from the last two epochs
    weighting.after_optimizer_step()     # GradNorm: renormalise the weights to sum n
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LossWeighting(nn.Module):
    def __init__(self, n_losses: int):
        super().__init__()
        if n_losses < 1:
            raise ValueError(f"n_losses must be >= 1, got {n_losses}")
        self.n_losses = n_losses

    def weights(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, losses: torch.Tensor, shared_params: Sequence[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        w = self.weights().to(losses)
        return (w * losses).sum(), {"weights": w.detach()}

    def observe(self, losses: torch.Tensor) -> None:
        pass

    def on_epoch_end(self) -> None:
        pass

    def after_optimizer_step(self) -> None:
        pass


class FixedWeighting(LossWeighting):
    def __init__(self, n_losses: int, weights: Sequence[float] | None = None):
        super().__init__(n_losses)
        w = torch.ones(n_losses) if weights is None else torch.as_tensor(list(weights), dtype=torch.float)
        if w.numel() != n_losses or bool((w < 0).any()):
            raise ValueError(f"fixed weights {list(w.tolist())}: need {n_losses} non-negative numbers")
        self.register_buffer("fixed", w)

    def weights(self) -> torch.Tensor:
        return self.fixed


class UncertaintyWeighting(LossWeighting):
    """L = sum_i exp(-s_i) L_i / 2 + s_i / 2 with learnable s_i = log sigma_i^2, clamped to
    [s_min, s_max] so no loss can be silenced (weight >= exp(-s_max) / 2) or blown up."""

    def __init__(self, n_losses: int, s_min: float = -3.0, s_max: float = 3.0, init: float = 0.0):
        super().__init__(n_losses)
        if not s_min <= init <= s_max:
            raise ValueError(f"uncertainty init {init} outside the bounds [{s_min}, {s_max}]")
        self.s_min, self.s_max = s_min, s_max
        self.log_var = nn.Parameter(torch.full((n_losses,), float(init)))

    def clamped(self) -> torch.Tensor:
        return self.log_var.clamp(self.s_min, self.s_max)

    def weights(self) -> torch.Tensor:
        return torch.exp(-self.clamped()) / 2

    def forward(self, losses, shared_params=None):
        s = self.clamped()
        total = (torch.exp(-s) * losses / 2 + s / 2).sum()
        return total, {"weights": (torch.exp(-s) / 2).detach(), "sigmas": torch.exp(s / 2).detach()}

    def after_optimizer_step(self) -> None:
        with torch.no_grad():  # keep the raw parameter inside the bounds, so it can move back at once
            self.log_var.clamp_(self.s_min, self.s_max)


class DWAWeighting(LossWeighting):
    """w_i = n softmax_i(r_i / T), r_i = mean L_i of the last epoch / of the one before; 1 for
    the first two epochs."""

    def __init__(self, n_losses: int, temperature: float = 2.0):
        super().__init__(n_losses)
        if temperature <= 0:
            raise ValueError("DWA temperature must be > 0")
        self.temperature = temperature
        self.register_buffer("current", torch.ones(n_losses))
        self.register_buffer("history", torch.zeros(2, n_losses))  # epoch means t-2, t-1
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self._sum, self._count = torch.zeros(n_losses), 0

    def weights(self) -> torch.Tensor:
        return self.current

    def observe(self, losses: torch.Tensor) -> None:
        self._sum = self._sum + losses.detach().float().cpu()
        self._count += 1

    def on_epoch_end(self) -> None:
        if self._count == 0:
            return
        mean = (self._sum / self._count).to(self.history)
        self.history = torch.stack([self.history[1], mean])
        self.epochs_seen += 1
        if int(self.epochs_seen) >= 2:
            ratio = self.history[1] / self.history[0].clamp(min=1e-12)
            self.current = self.n_losses * torch.softmax(ratio / self.temperature, 0)
        self._sum, self._count = torch.zeros(self.n_losses), 0


class GradNormWeighting(LossWeighting):
    """Learnable w_i trained so that ||grad_W w_i L_i|| follows mean_norm * (r_i)^alpha, with
    r_i the relative inverse training rate (L_i / L_i(0), normalised by its mean). W: shared
    parameters the caller passes (e.g. the last shared layer). Weights are renormalised to
    sum n after each optimizer step. The task losses see the weights as constants."""

    def __init__(self, n_losses: int, alpha: float = 1.5, min_weight: float = 1e-3):
        super().__init__(n_losses)
        self.alpha, self.min_weight = alpha, min_weight
        self.w = nn.Parameter(torch.ones(n_losses))
        self.register_buffer("initial", torch.zeros(n_losses))

    def weights(self) -> torch.Tensor:
        return self.w

    def forward(self, losses, shared_params=None):
        if not shared_params:
            raise ValueError("GradNorm needs shared_params: the parameters every loss flows through")
        if bool((self.initial == 0).all()):
            self.initial = losses.detach().clamp(min=1e-12)
        if not torch.is_grad_enabled() or not losses.requires_grad:
            return (self.w.detach() * losses).sum(), {"weights": self.w.detach()}
        params = [p for p in shared_params if p.requires_grad]
        raw = []
        for i in range(self.n_losses):
            grads = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
            flat = [g.flatten() for g in grads if g is not None]
            raw.append(torch.cat(flat).norm() if flat else losses.new_zeros(()))
        # ||grad_W (w_i L_i)|| = w_i ||grad_W L_i||: exact, and no second-order autograd needed
        norms = self.w * torch.stack(raw).detach()  # (n,)
        ratio = losses.detach() / self.initial
        target = (norms.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
        gradnorm_loss = (norms - target).abs().sum()
        (w_grad,) = torch.autograd.grad(gradnorm_loss, self.w, retain_graph=True)
        # the task losses use constant weights; this linear term carries w's own gradient
        surrogate = (self.w * w_grad.detach()).sum()
        total = (self.w.detach() * losses).sum() + surrogate - surrogate.detach()
        return total, {"weights": self.w.detach(), "gradnorm_loss": gradnorm_loss.detach()}

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            self.w.clamp_(min=self.min_weight)
            self.w.mul_(self.n_losses / self.w.sum())
