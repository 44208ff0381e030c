"""What a fractal level predicts about each of its time units: a summary of the onset roll.

kinds (any subset, per level):
- pitches: (P,) bits, pitch has an onset in the unit
- chroma: (12,) bits, pitch class has an onset in the unit
- density: class of the onset count, round(2 log2(1 + count)) clipped to n_density - 1
- velocity: class of the mean onset velocity (velocity_bins bins), -100 (ignored) when empty
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lightning_modules.sampling import build_processors, sample_next

BIT_KINDS = ("pitches", "chroma")
CLASS_KINDS = ("density", "velocity")
KINDS = BIT_KINDS + CLASS_KINDS


def velocity_class(velocity: torch.Tensor, velocity_bins: int) -> torch.Tensor:
    return (velocity.clamp(1, 127) * velocity_bins // 128).long()


def class_velocity(cls: torch.Tensor, velocity_bins: int) -> torch.Tensor:
    """Bin centre, 1..127."""
    return ((cls.float() + 0.5) * 128 / velocity_bins).round().clamp(1, 127).long()


class SummarySpec:
    def __init__(self, kinds: list[str], n_pitches: int, pitch_low: int, n_density: int = 16,
                 velocity_bins: int = 32):
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise ValueError(f"level summary kinds {list(kinds)}: choose a non-empty subset of {KINDS}")
        self.kinds = [k for k in KINDS if k in kinds]
        self.n_pitches, self.pitch_low = n_pitches, pitch_low
        self.n_density, self.velocity_bins = n_density, velocity_bins
        self.sizes = {"pitches": n_pitches, "chroma": 12, "density": n_density, "velocity": velocity_bins}

    @property
    def feature_dim(self) -> int:
        return sum(self.sizes[k] for k in self.kinds)

    def pitch_class_matrix(self, device) -> torch.Tensor:
        pcs = (torch.arange(self.n_pitches, device=device) + self.pitch_low) % 12
        return F.one_hot(pcs, 12).float()  # (P, 12)

    def targets(self, velocity: torch.Tensor, unit: int) -> dict[str, torch.Tensor]:
        """velocity (B, T, P) -> {kind: (B, T // unit, ...)}: floats for bits, long for classes."""
        b, t, p = velocity.shape
        v = velocity.reshape(b, t // unit, unit, p)
        onset = v > 0
        out: dict[str, torch.Tensor] = {}
        pitches = onset.any(2).float()  # (B, n, P)
        if "pitches" in self.kinds:
            out["pitches"] = pitches
        if "chroma" in self.kinds:
            out["chroma"] = (pitches @ self.pitch_class_matrix(velocity.device)).clamp(max=1)
        count = onset.sum((2, 3)).float()  # (B, n)
        if "density" in self.kinds:
            out["density"] = (2 * torch.log2(1 + count)).round().long().clamp(max=self.n_density - 1)
        if "velocity" in self.kinds:
            mean = v.float().sum((2, 3)) / count.clamp(min=1)
            out["velocity"] = torch.where(count > 0, velocity_class(mean.round(), self.velocity_bins),
                                          torch.full_like(count, -100).long())
        return out

    def features(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summary values -> (..., feature_dim) float input features (an ignored class -> zeros)."""
        parts = []
        for k in self.kinds:
            if k in BIT_KINDS:
                parts.append(values[k].float())
            else:
                cls = values[k]
                parts.append(F.one_hot(cls.clamp(min=0), self.sizes[k]).float() * (cls >= 0)[..., None])
        return torch.cat(parts, -1)

    def loss(self, logits: dict[str, torch.Tensor], values: dict[str, torch.Tensor],
             weight: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over kinds of the mean per-token loss; weight (...,) selects tokens (MAR: masked)."""
        total = 0.0
        for k in self.kinds:
            if k in BIT_KINDS:
                per = F.binary_cross_entropy_with_logits(logits[k], values[k], reduction="none").mean(-1)
                ok = torch.ones_like(per, dtype=torch.bool)
            else:
                per = F.cross_entropy(logits[k].flatten(0, -2), values[k].flatten(), ignore_index=-100,
                                      reduction="none").view(values[k].shape)
                ok = values[k] >= 0
            w = ok.float() if weight is None else ok.float() * weight
            total = total + (per * w).sum() / w.sum().clamp(min=1)
        return total

    @torch.no_grad()
    def sample(self, logits: dict[str, torch.Tensor], temperature: float = 1.0, top_p: float | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Bits ~ Bernoulli(sigmoid(logit / T)); classes ~ the (nucleus) softmax: never argmax."""
        out = {}
        for k in self.kinds:
            lg = logits[k]
            if k in BIT_KINDS:
                probs = torch.sigmoid(lg / temperature)
                out[k] = (torch.rand(probs.shape, generator=generator, device=lg.device) < probs).float()
            else:
                procs = build_processors(temperature, None, top_p)
                out[k] = sample_next(lg.reshape(-1, lg.size(-1)), procs, generator).view(lg.shape[:-1])
        return out


def cosine_mask_ratio(u: torch.Tensor) -> torch.Tensor:
    """MaskGIT's cosine schedule: u in [0, 1) -> share of tokens masked, cos(pi u / 2)."""
    return torch.cos(math.pi / 2 * u)


def select_values(values: dict[str, torch.Tensor], mask: torch.Tensor, other: dict[str, torch.Tensor]
                  ) -> dict[str, torch.Tensor]:
    """Per token: `values` where mask (...,) else `other`."""
    return {k: torch.where(mask.view(*mask.shape, *([1] * (v.dim() - mask.dim()))), v, other[k])
            for k, v in values.items()}
