"""Our R2 equals scikit-learn's r2_score (raw per dimension and uniform average)."""
import numpy as np
from sklearn.metrics import r2_score

from metrics.regression import r2_mean, r2_per_dim


def test_r2_matches_sklearn_including_constant_columns():
    rng = np.random.default_rng(0)
    target = rng.random((57, 19))
    pred = target + rng.normal(0, 0.3, target.shape)
    target[:, 3] = 0.5  # constant target, imperfect prediction -> 0.0
    target[:, 4] = 0.25
    pred[:, 4] = 0.25  # constant target predicted exactly -> 1.0
    ours = r2_per_dim(pred, target)
    assert np.allclose(ours, r2_score(target, pred, multioutput="raw_values"))
    assert np.isclose(r2_mean(pred, target), r2_score(target, pred))
    assert ours[3] == 0.0 and ours[4] == 1.0
