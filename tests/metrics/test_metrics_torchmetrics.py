"""MusicMetrics accumulates per-sample metric values across updates."""
from __future__ import annotations

import math

import pytest
from metrics_fixtures import FOUR_BARS, build_score

from metrics.registry import METRIC_SETS, resolve_names
from metrics.torchmetrics_wrappers import MusicMetrics


def test_means_over_updates_skip_undefined_values():
    metric = MusicMetrics(names=["pitch_range", "n_pitches_used", "GS"])
    metric.update([build_score(FOUR_BARS)])  # range 12, 6 pitches, GS 370/384
    metric.update([build_score([(0, 4, 60), (4, 4, 67)]), build_score([])])
    # second piece: range 7, 2 pitches, one bar -> GS undefined; third piece is empty
    result = metric.compute()
    assert result["pitch_range"].item() == pytest.approx((12 + 7) / 2)
    assert result["n_pitches_used"].item() == pytest.approx(4.0)
    assert result["GS"].item() == pytest.approx(370 / 384)  # only the defined one
    assert metric.empty.item() == 1
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(metric.compute()["GS"].item())


def test_metric_names_from_sets():
    assert "SI_short" not in resolve_names("fast")
    assert resolve_names("all") == METRIC_SETS["all"]
    with pytest.raises(KeyError, match="unknown metric"):
        resolve_names(["H1", "nope"])
