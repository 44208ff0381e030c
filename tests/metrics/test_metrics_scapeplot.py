"""The batched fitness scape plot equals the straightforward one; SI reads it like MusDr."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.scapeplot import (
    chroma_features,
    fitness_scape_plot,
    fitness_scape_plot_loops,
    note_chroma,
    self_similarity,
    structureness,
)


def _random_ssms():
    rng = np.random.default_rng(7)
    for trial in range(24):
        N = int(rng.integers(3, 17))
        if trial % 3 == 0:  # continuous values: ties impossible
            S = rng.random((N, N))
            S = (S + S.T) / 2
        elif trial % 3 == 1:  # few distinct values: many ties, exercises the tie-breaking
            S = rng.choice([-2.0, 0.0, 0.5, 1.0], size=(N, N))
        else:  # the real pipeline: thresholded, penalised, transposition-invariant SSM
            frames = rng.random((12, 5 * N)) * (rng.random((1, 5 * N)) > 0.3)
            S = self_similarity(chroma_features(frames))
        np.fill_diagonal(S, 1.0)
        yield S


@pytest.mark.parametrize("index", range(24))
def test_batched_scape_plot_equals_loops(index):
    S = list(_random_ssms())[index]
    expected = fitness_scape_plot_loops(S)
    assert np.array_equal(fitness_scape_plot(S), expected)
    # tiny memory budget: one length per batch, many batches
    assert np.array_equal(fitness_scape_plot(S, memory_budget=1), expected)
    # truncated to the durations SI needs
    assert np.array_equal(fitness_scape_plot(S, max_length=3), expected[:3])


def test_fitness_of_a_perfect_repetition():
    # A B A B with A, B orthogonal 2-frame blocks: the segment A (frames 0-1) repeats at
    # 2 places; its fitness must be the best of all length-2 segments and positive.
    S = np.full((8, 8), -2.0)
    for i in range(8):
        for j in range(8):
            if (i // 2) % 2 == (j // 2) % 2 and i % 2 == j % 2:
                S[i, j] = 1.0
    fitness = fitness_scape_plot(S)
    assert fitness[1, 0] > 0
    assert fitness[1, 0] == pytest.approx(fitness[1].max())


def test_structureness_indexing_matches_musdr():
    # rows are segment length - 1 at 2 Hz: SI(3, 8) reads rows int(3*2)-1=5 .. int(8*2)-1=15
    fitness = np.tile(np.arange(40)[:, None] / 100.0, (1, 40))
    assert structureness(fitness, 3, 8) == pytest.approx(0.15)
    assert structureness(fitness, 8, 15) == pytest.approx(0.29)
    assert structureness(fitness, 15) == pytest.approx(0.39)  # up to 128 s, capped by N
    assert structureness(fitness[:5], 3, 8) == 0.0  # piece shorter than 3 s


def test_ssm_properties_and_chroma():
    # C major triad for 1 s then A minor for 1 s at 10 Hz
    onset = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    offset = onset + 1.0
    pitch = np.array([60, 64, 67, 57, 60, 64])
    chroma = note_chroma(onset, offset, pitch)
    assert chroma.shape == (12, 21)
    assert chroma[0, :20].sum() == pytest.approx(2.0)  # C sounds for both seconds
    assert chroma[7, :10].sum() == pytest.approx(1.0) and chroma[7, 10:].sum() == 0
    S = self_similarity(chroma_features(np.tile(chroma, (1, 6))))
    assert np.allclose(np.diag(S), 1.0)
    assert S.min() >= -2.0 and S.max() <= 1.0
