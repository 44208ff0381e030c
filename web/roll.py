"""Results as the page draws them (GET /jobs/{id}/roll): notes on the 16th-note grid, Level 0
curves (density / velocity / tempo) and the cells of every level's roll.

    {"n_steps", "steps_per_beat", "beats_per_bar", "qpm",
     "notes": [[start_step, pitch, duration_steps, velocity], ...],
     "curves": {"unit": steps per point, "from": "level 0 (bars)" | "notes",
                "density": [...], "velocity": [...], "tempo": [...]},
     "levels": [{"index", "name", "unit", "kinds", "cells": [[step, pitch], ...]}, ...],
     "changed": {"start_step", "end_step", "levels"} | null}
"""
from __future__ import annotations

import numpy as np
import symusic
import torch

from callbacks.fractal_viz import level_rolls
from lightning_modules.components.fractal_summary import class_velocity


def _notes_from_roll(velocity: np.ndarray, duration: np.ndarray, pitch_low: int) -> list[list[int]]:
    steps, pitches = np.nonzero(velocity)
    return [[int(t), int(p) + pitch_low, max(int(duration[t, p]), 1), int(velocity[t, p])]
            for t, p in zip(steps.tolist(), pitches.tolist())]


def notes_curves(notes: list[list[int]], n_steps: int, unit: int, tempo: list[float]) -> dict:
    """Per `unit` steps: onset count and mean onset velocity (null where silent)."""
    n = max(1, -(-n_steps // unit))
    count, total = np.zeros(n), np.zeros(n)
    for start, _, _, vel in notes:
        count[min(start // unit, n - 1)] += 1
        total[min(start // unit, n - 1)] += vel
    velocity = [round(float(t / c), 1) if c else None for t, c in zip(total, count)]
    return {"unit": unit, "from": "notes", "density": count.tolist(), "velocity": velocity, "tempo": tempo[:n]}


def fractal_roll(velocity: np.ndarray, duration: np.ndarray, levels: list[dict[str, np.ndarray]],
                 names: list[str], units: list[int], pitch_low: int, steps_per_beat: int, beats_per_bar: int,
                 qpm: float, velocity_bins: int, changed: dict | None = None) -> dict:
    """A fractal piece: velocity/duration (T, P) and its level plans (coarse to fine, notes excluded)."""
    n_steps = int(velocity.shape[0])
    notes = _notes_from_roll(velocity, duration, pitch_low)
    first, unit0 = levels[0], units[0]
    n0 = int(next(iter(first.values())).shape[0])
    curves = notes_curves(notes, n_steps, unit0, [float(qpm)] * n0)
    if "density" in first:  # the model's own Level 0 plan, where it has one
        cls = first["density"].astype(np.float64)
        curves["density"] = np.round(2 ** (cls / 2) - 1, 2).tolist()  # inverse of round(2 log2(1 + count))
        curves["from"] = f"level 0 ({names[0]})"
    if "velocity" in first:
        vel = class_velocity(torch.as_tensor(first["velocity"].clip(0)), velocity_bins).numpy()
        silent = np.asarray(curves["density"]) <= 0
        curves["velocity"] = [None if s else int(v) for v, s in zip(vel.tolist(), silent.tolist())]
    images = level_rolls([*levels, {"velocity": velocity}], units, pitch_low)
    out_levels = []
    for i, (values, unit, image) in enumerate(zip(levels, units, images)):
        kinds = sorted(values)
        cells: list[list[int]] = []
        if {"pitches", "chroma"} & set(kinds):  # class-only levels have no pitch axis to draw
            tokens, pitches = np.nonzero(image[::unit] > 0.5)
            cells = [[int(t) * unit, int(p) + pitch_low] for t, p in zip(tokens.tolist(), pitches.tolist())]
        out_levels.append({"index": i, "name": names[i], "unit": unit, "kinds": kinds, "cells": cells})
    out_levels.append({"index": len(levels), "name": names[len(levels)], "unit": 1, "kinds": ["notes"],
                       "cells": []})
    return {"n_steps": n_steps, "steps_per_beat": steps_per_beat, "beats_per_bar": beats_per_bar,
            "qpm": float(qpm), "notes": notes, "curves": curves, "levels": out_levels, "changed": changed}


def score_roll(score: symusic.Score, steps_per_beat: int = 4, beats_per_bar: int = 4,
               changed: dict | None = None) -> dict:
    """Any score (token families): its notes on the grid and notes-derived curves per bar."""
    tpq = score.tpq
    notes = []
    for track in score.tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            start = round(note.time * steps_per_beat / tpq)
            length = max(1, round(note.duration * steps_per_beat / tpq))
            notes.append([start, int(note.pitch), min(length, 255), int(note.velocity)])
    notes.sort()
    n_steps = max([s + d for s, _, d, _ in notes], default=1)
    bar = steps_per_beat * beats_per_bar
    n_bars = max(1, -(-n_steps // bar))
    tempos = sorted((t.time, float(t.qpm)) for t in score.tempos) or [(0, 120.0)]
    tempo = []
    for b in range(n_bars):
        tick = b * bar * tpq // steps_per_beat
        tempo.append(next((q for t, q in reversed(tempos) if t <= tick), tempos[0][1]))
    return {"n_steps": n_bars * bar, "steps_per_beat": steps_per_beat, "beats_per_bar": beats_per_bar,
            "qpm": tempo[0], "notes": notes, "curves": notes_curves(notes, n_bars * bar, bar, tempo),
            "levels": [{"index": 0, "name": "notes", "unit": 1, "kinds": ["notes"], "cells": []}],
            "changed": changed}
