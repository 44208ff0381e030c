"""Regression scores over (N, D) arrays, with scikit-learn's semantics (tests prove the match)."""
from __future__ import annotations

import numpy as np


def r2_per_dim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(D,) coefficient of determination per column, like sklearn `r2_score(multioutput="raw_values")`:
    1 - SS_res / SS_tot; a constant column scores 1.0 when predicted exactly, else 0.0."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"r2_per_dim wants two equal (N, D) arrays, got {pred.shape} and {target.shape}")
    ss_res = ((target - pred) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    safe = ss_tot > 0
    out = np.where(ss_res == 0, 1.0, 0.0)
    out[safe] = 1.0 - ss_res[safe] / ss_tot[safe]
    return out


def r2_mean(pred: np.ndarray, target: np.ndarray) -> float:
    """sklearn `r2_score(target, pred)` (multioutput="uniform_average")."""
    return float(r2_per_dim(pred, target).mean())
