"""FractalGen for music time: a recursive node = one level generator + `next_level` (another
node, or the final `PitchTransformerOutputProj`). Coarse structure first, notes last.

    root.generator            L0, e.g. bars  (MAR)
    root.next_level.generator L1, e.g. beats (MAR)
    ...
    root.next_level....next_level  the note output (AR over the pitches of each step)

`FlatFractal` holds the same modules as `levels.0 ... levels.N` (the older flat layout);
`lightning_modules/fractal_migration.py` maps checkpoints between the two.
"""
from __future__ import annotations

import torch
from torch import nn

from lightning_modules.components.fractal_levels import LevelGenerator
from lightning_modules.components.fractal_output import PitchTransformerOutputProj

Values = dict[str, torch.Tensor]


def _output(output: dict, shared: dict, parent_dim: int, parent_unit: int) -> PitchTransformerOutputProj:
    return PitchTransformerOutputProj(n_pitches=shared["n_pitches"], parent_dim=parent_dim, parent_unit=parent_unit,
                                      velocity_bins=shared["velocity_bins"],
                                      duration_classes=shared["duration_classes"], **output)


def _generator(level: dict, shared: dict, parent_dim, parent_unit) -> LevelGenerator:
    keys = ("n_pitches", "pitch_low", "window_steps", "n_density", "velocity_bins")
    return LevelGenerator(**level, **{k: shared[k] for k in keys}, parent_dim=parent_dim, parent_unit=parent_unit)


class FractalGen(nn.Module):
    """levels: per-level kwargs of `LevelGenerator` (coarse to fine, >= 1); output: kwargs of
    the note output; shared: n_pitches, pitch_low, window_steps, n_density, velocity_bins,
    duration_classes."""

    def __init__(self, levels: list[dict], output: dict, shared: dict, parent_dim: int | None = None,
                 parent_unit: int | None = None):
        super().__init__()
        if not levels:
            raise ValueError("a FractalGen node needs at least one level generator")
        self.generator = _generator(levels[0], shared, parent_dim, parent_unit)
        d, unit = self.generator.d_model, self.generator.unit
        self.next_level = FractalGen(levels[1:], output, shared, d, unit) if len(levels) > 1 \
            else _output(output, shared, d, unit)

    def chain(self) -> list[nn.Module]:
        """The level modules coarse to fine (the output last)."""
        rest = self.next_level.chain() if isinstance(self.next_level, FractalGen) else [self.next_level]
        return [self.generator, *rest]

    def forward(self, velocity: torch.Tensor, duration: torch.Tensor, chroma: torch.Tensor,
                parent: torch.Tensor | None = None) -> list[torch.Tensor]:
        """-> one loss per level, this node's first."""
        loss, hidden = self.generator.train_level(velocity, duration, chroma, parent)
        if isinstance(self.next_level, FractalGen):
            return [loss, *self.next_level(velocity, duration, chroma, hidden)]
        return [loss, self.next_level.train_level(velocity, duration, chroma, hidden)[0]]

    @torch.no_grad()
    def sample(self, chroma: torch.Tensor, n_steps: int, references: list[Values | None] | None = None,
               regenerate: list[torch.Tensor | None] | None = None, parent: torch.Tensor | None = None,
               **sampling) -> list[Values]:
        """Top-down sampling -> each level's values (this node's first). references/regenerate:
        per level (this node's first), the values to keep and the (B, n) mask of tokens to sample."""
        ref = references[0] if references else None
        regen = regenerate[0] if regenerate else None
        values, hidden = self.generator.sample_level(chroma, parent, n_steps // self.generator.unit, ref, regen,
                                                     **_level_kwargs(sampling))
        rest_refs = references[1:] if references else None
        rest_regen = regenerate[1:] if regenerate else None
        if isinstance(self.next_level, FractalGen):
            return [values, *self.next_level.sample(chroma, n_steps, rest_refs, rest_regen, hidden, **sampling)]
        out, _ = self.next_level.sample_level(chroma, hidden, n_steps, rest_refs[0] if rest_refs else None,
                                              rest_regen[0] if rest_regen else None, **sampling)
        return [values, out]


def _level_kwargs(sampling: dict) -> dict:
    return {k: v for k, v in sampling.items() if k != "use_cache"}


class FlatFractal(nn.Module):
    """The same level modules in a flat `levels` list (old checkpoints; migration tests)."""

    def __init__(self, levels: list[dict], output: dict, shared: dict):
        super().__init__()
        modules, parent_dim, parent_unit = [], None, None
        for level in levels:
            modules.append(_generator(level, shared, parent_dim, parent_unit))
            parent_dim, parent_unit = modules[-1].d_model, modules[-1].unit
        modules.append(_output(output, shared, parent_dim, parent_unit))
        self.levels = nn.ModuleList(modules)

    def chain(self) -> list[nn.Module]:
        return list(self.levels)

    def forward(self, velocity, duration, chroma) -> list[torch.Tensor]:
        losses, hidden = [], None
        for level in self.levels:
            loss, hidden = level.train_level(velocity, duration, chroma, hidden)
            losses.append(loss)
        return losses

    @torch.no_grad()
    def sample(self, chroma, n_steps, references=None, regenerate=None, **sampling) -> list[Values]:
        out, hidden = [], None
        for i, level in enumerate(self.levels):
            last = i == len(self.levels) - 1
            n = n_steps if last else n_steps // level.unit
            kwargs = sampling if last else _level_kwargs(sampling)
            values, hidden = level.sample_level(chroma, hidden, n, references[i] if references else None,
                                                regenerate[i] if regenerate else None, **kwargs)
            out.append(values)
        return out


def level_units(chain: list[nn.Module]) -> list[int]:
    return [getattr(level, "unit", 1) for level in chain]


def reference_values(chain: list[nn.Module], velocity: torch.Tensor, duration: torch.Tensor) -> list[Values]:
    """Every level's values for a given roll (B, T, P): what `target_levels` keeps."""
    refs: list[Values] = []
    for level in chain[:-1]:
        refs.append({k: v.clamp(min=0) if v.dtype == torch.long else v
                     for k, v in level.spec.targets(velocity, level.unit).items()})
    return [*refs, {"velocity": velocity, "duration": duration}]


def regenerate_masks(chain: list[nn.Module], batch: int, n_steps: int, target_levels: list[int] | None,
                     step_range: tuple[int, int] | None, device=None) -> list[torch.Tensor]:
    """(B, n) bool per level: sample tokens of levels in target_levels (all when None) that
    overlap step_range [start, end) (the whole window when None); keep the rest."""
    masks = []
    start, end = step_range if step_range is not None else (0, n_steps)
    for i, unit in enumerate(level_units(chain)):
        token_start = torch.arange(0, n_steps, unit, device=device)
        overlap = (token_start < end) & (token_start + unit > start)
        chosen = target_levels is None or i in target_levels
        masks.append((overlap & chosen)[None].expand(batch, -1).clone())
    return masks
