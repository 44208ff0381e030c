"""Overlapping area and KL between KDEs of two sets, and Yang & Lerch's distance sets."""
from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.distribution import (
    compare_sets,
    inter_set_distances,
    intra_set_distances,
    kl_divergence,
    overlap_area,
)


def test_identical_sets_overlap_fully():
    values = np.random.default_rng(0).normal(size=200)
    assert overlap_area(values, values) == pytest.approx(1.0, abs=1e-3)
    assert kl_divergence(values, values) == pytest.approx(0.0, abs=1e-9)


def test_separated_sets_do_not_overlap():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(20, 1, 300)
    assert overlap_area(a, b) < 1e-3
    assert kl_divergence(a, b) > 10


def test_two_gaussians_overlap_as_theory_says():
    # N(0,1) vs N(1,1): overlapping area = 2 * Phi(-1/2) = 0.617
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 4000), rng.normal(1, 1, 4000)
    assert overlap_area(a, b) == pytest.approx(0.617, abs=0.03)
    # KL(N(0,1) || N(1,1)) = 1/2 nat; KDE smoothing widens both a little
    assert kl_divergence(a, b) == pytest.approx(0.5, abs=0.08)


def test_distance_sets_by_hand():
    assert sorted(intra_set_distances([0.0, 1.0, 3.0])) == [1.0, 2.0, 3.0]
    assert sorted(inter_set_distances([0.0, 10.0], [1.0])) == [1.0, 9.0]


def test_constant_and_tiny_sets():
    assert math.isnan(overlap_area([1.0], [1.0, 2.0]))
    assert overlap_area([1.0, 1.0, 1.0], [1.0, 1.0]) == pytest.approx(1.0, abs=1e-3)
    result = compare_sets([0.1, 0.2, np.nan, 0.3], [0.15, 0.25, 0.35, 0.2])
    assert set(result) == {"overlap_area", "kl", "overlap_area_intra_inter", "kl_intra_inter"}
    assert all(math.isfinite(v) for v in result.values())
