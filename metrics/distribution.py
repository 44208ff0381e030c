"""Distances between per-metric distributions of two sets (Yang & Lerch 2018).

For each metric: Gaussian KDEs (Scott's bandwidth) of
- the values of the generated and of the reference set -> overlapping area, KL;
- as in the paper, the reference's intra-set distances |r_i - r_j| (i != j) and the
  inter-set distances |g_i - r_j| -> overlapping area, KL(intra || inter).
KL is computed on one grid shared by both densities (mgeval evaluates each density on its
own sample range, which makes its KL depend on that choice).
"""
from __future__ import annotations

import numpy as np

GRID_POINTS = 1000
_MIN_DENSITY = 1e-12


def finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def kde_bandwidth(values: np.ndarray) -> float:
    """Scott's rule; a small positive width for constant samples (a spike, not an error)."""
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    if std > 0:
        return std * values.size ** (-1 / 5)
    return 1e-3 * max(abs(float(values.mean())), 1.0)


def kde_density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    bandwidth = kde_bandwidth(values)
    z = (grid[:, None] - values[None, :]) / bandwidth
    return np.exp(-0.5 * z**2).sum(axis=1) / (values.size * bandwidth * np.sqrt(2 * np.pi))


def _shared_grid(a: np.ndarray, b: np.ndarray, points: int) -> np.ndarray:
    pad = 4 * max(kde_bandwidth(a), kde_bandwidth(b))
    both = np.concatenate([a, b])
    return np.linspace(both.min() - pad, both.max() + pad, points)


def overlap_area(a, b, points: int = GRID_POINTS) -> float:
    """Area under min(p_a, p_b) of the two KDEs, in [0, 1]; nan with fewer than 2 values."""
    a, b = finite(a), finite(b)
    if a.size < 2 or b.size < 2:
        return float("nan")
    grid = _shared_grid(a, b, points)
    area = np.trapezoid(np.minimum(kde_density(a, grid), kde_density(b, grid)), grid)
    return float(min(area, 1.0))


def kl_divergence(a, b, points: int = GRID_POINTS) -> float:
    """KL(p_a || p_b) in nats between the two KDEs; nan with fewer than 2 values."""
    a, b = finite(a), finite(b)
    if a.size < 2 or b.size < 2:
        return float("nan")
    grid = _shared_grid(a, b, points)
    p = np.maximum(kde_density(a, grid), _MIN_DENSITY)
    q = np.maximum(kde_density(b, grid), _MIN_DENSITY)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def intra_set_distances(values) -> np.ndarray:
    values = finite(values)
    upper = np.triu_indices(values.size, k=1)
    return np.abs(values[:, None] - values[None, :])[upper]


def inter_set_distances(a, b) -> np.ndarray:
    return np.abs(finite(a)[:, None] - finite(b)[None, :]).ravel()


def compare_sets(generated, reference, points: int = GRID_POINTS) -> dict[str, float]:
    """Value-distribution and Yang & Lerch distance-distribution comparisons of one metric."""
    intra = intra_set_distances(reference)
    inter = inter_set_distances(generated, reference)
    return {
        "overlap_area": overlap_area(generated, reference, points),
        "kl": kl_divergence(generated, reference, points),
        "overlap_area_intra_inter": overlap_area(intra, inter, points),
        "kl_intra_inter": kl_divergence(intra, inter, points),
    }
