"""Tiny fractal models and synthetic rolls for fast tests."""
from __future__ import annotations

import torch

from lightning_modules.components.loss_weighting import FixedWeighting
from lightning_modules.fractal import FractalModule

N_PITCHES, PITCH_LOW = 24, 48
SPECS = {
    "bars": {"kind": "mar", "unit_steps": 16, "summary": ["chroma", "density", "velocity"], "d_model": 16,
             "n_layers": 1, "n_heads": 2, "dropout": 0.0, "mar_iters": 3},
    "beats": {"kind": "mar", "unit_steps": 4, "summary": ["pitches", "density", "velocity"], "d_model": 16,
              "n_layers": 1, "n_heads": 2, "dropout": 0.0, "mar_iters": 3},
    "steps": {"kind": "ar", "unit_steps": 1, "summary": ["pitches", "velocity"], "d_model": 16, "n_layers": 1,
              "n_heads": 2, "dropout": 0.0, "cross_window": 2},
}
OUTPUT = {"name": "notes", "d_model": 32, "n_layers": 2, "n_heads": 1, "max_notes": 4, "cross_window": 2,
          "dropout": 0.0}
DEPTHS = {2: ["beats"], 3: ["bars", "beats"], 4: ["bars", "beats", "steps"]}


def tiny_module(depth: int = 4, bars: int = 2, weighting=None, n_pitches: int = N_PITCHES,
                pitch_low: int = PITCH_LOW, **kwargs) -> FractalModule:
    torch.manual_seed(0)
    return FractalModule(levels=DEPTHS[depth], level_specs=SPECS, output=dict(OUTPUT), n_pitches=n_pitches,
                         pitch_low=pitch_low, window_steps=16 * bars, velocity_bins=8, n_density=6,
                         duration_classes=4, loss_weighting=weighting or FixedWeighting, **kwargs)


def random_batch(batch: int = 2, bars: int = 2, density: float = 0.08, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    t = 16 * bars
    onset = torch.rand(batch, t, N_PITCHES, generator=gen) < density
    velocity = torch.randint(1, 128, (batch, t, N_PITCHES), generator=gen) * onset
    duration = torch.randint(1, 5, (batch, t, N_PITCHES), generator=gen) * onset
    chroma = torch.rand(batch, 12, generator=gen)
    return {"velocity": velocity, "duration": duration, "chroma": chroma}
