"""Measure-aligned overlapping slices of long note sequences, redrawn every epoch.

A sequence no longer than `slice_len` notes is one slice. A longer one is cut into slices that
start and end on measure boundaries, each at most `slice_len` notes (unless one measure is
longer), consecutive slices overlapping by a random share of a slice; the random boundaries
change with the epoch's seed, so an epoch sees different context windows.
"""
from __future__ import annotations

import numpy as np


def measure_starts(measure: np.ndarray) -> np.ndarray:
    """Note indices where a new measure begins (always includes 0)."""
    return np.flatnonzero(np.diff(measure, prepend=measure[0] - 1) != 0)


def measure_slices(measure: np.ndarray, slice_len: int, rng: np.random.Generator | None = None,
                   overlap: tuple[float, float] = (0.25, 0.5)) -> list[tuple[int, int]]:
    """[(start, end)] note ranges covering every note; deterministic when rng is None."""
    n = len(measure)
    if n <= slice_len:
        return [(0, n)]
    starts = measure_starts(measure)
    bounds = np.append(starts, n)
    out = []
    start = 0
    if rng is not None:  # a random first cut, so slice boundaries differ between epochs
        first_end = start + int(rng.integers(slice_len // 2, slice_len + 1))
    else:
        first_end = slice_len
    end_limit = first_end
    while True:
        ok = bounds[(bounds > start) & (bounds <= end_limit)]
        end = int(ok.max()) if len(ok) else int(bounds[bounds > start].min())  # a measure > slice_len
        out.append((start, end))
        if end >= n:
            return out
        share = rng.uniform(*overlap) if rng is not None else float(np.mean(overlap))
        target = end - int(share * (end - start))
        cands = starts[(starts > start) & (starts <= target)]
        start = int(cands.max()) if len(cands) else end
        end_limit = start + slice_len


def plan_epoch(measures: list[np.ndarray], slice_len: int, seed: int | None) -> list[tuple[int, int, int]]:
    """[(item index, start, end)] for every item; seed None gives the fixed evaluation slicing."""
    rng = np.random.default_rng(seed) if seed is not None else None
    return [(i, s, e) for i, m in enumerate(measures) for s, e in measure_slices(m, slice_len, rng)]
