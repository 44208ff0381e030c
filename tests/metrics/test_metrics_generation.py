"""Generation-quality metrics on hand-computed fixtures."""
from __future__ import annotations

import math

import pytest
from metrics_fixtures import build_score

from datamodules.chords import Chord
from metrics import generation as g
from metrics.notes import ChordSpan, Piece

# 5 bars at tpq 4: bars 0-3 = X (C4, E4, G4 on beats 1-3), bar 4 = Y (C4 on beats 1 and 3)
X = [(0, 4, 60), (4, 4, 64), (8, 4, 67)]
Y = [(0, 4, 60), (8, 4, 60)]
LOOP = [(16 * bar + t, d, p) for bar in range(4) for t, d, p in X] + \
       [(64 + t, d, p) for t, d, p in Y]


def test_timing_metrics_by_hand(four_bars):
    piece = Piece(four_bars)
    # 10 notes from 0 s to 64 ticks * 0.125 s = 8 s
    assert g.note_density(piece) == pytest.approx(10 / 8)
    # silences: ticks 20-24 (0.5 s) and 28-48 (2.5 s) -> 3 s of 8
    assert g.dead_air_ratio(piece) == pytest.approx(3 / 8)
    # both gaps >= 180 ms: 2 per 8 s = 15 per minute
    assert g.long_gap_rate(piece) == pytest.approx(15.0)


def test_short_gaps_are_not_long_gaps():
    # 0.125 s gap (1 tick) between two notes: dead air but no long gap
    piece = Piece(build_score([(0, 3, 60), (4, 4, 62)]))
    assert g.dead_air_ratio(piece) == pytest.approx(1 / 8)
    assert g.long_gap_rate(piece) == 0.0


def test_pentatonic_adherence_by_hand(four_bars):
    # C:3 D:3 E:2 F:1 G:1; C major pentatonic {C D E G A} holds all but F -> 9 / 10
    assert g.pentatonic_adherence(Piece(four_bars)) == pytest.approx(0.9)


def test_diversity_distinct_ngrams():
    # 1234 2341 3412 4123 1234 2341 3412: 4 distinct of 7
    assert g.distinct_ngram_ratio([1, 2, 3, 4, 1, 2, 3, 4, 1, 2], 4) == pytest.approx(4 / 7)
    assert math.isnan(g.distinct_ngram_ratio([1, 2, 3], 4))


def test_repetition_and_structure_by_hand():
    piece = Piece(build_score(LOOP))
    # bar pairs (X,X) (X,X) (X,X) (X,Y): 3 of 4 repeat the bar before
    assert g.repetition_rate(piece) == pytest.approx(0.75)
    # 2-bar phrases: XX@0, XX@1, XX@2, XY@3. XX@0 recurs at 2 (no overlap), XX@1 only
    # overlapping (0, 2), XX@2 recurs at 0, XY is unique -> 2 of 4
    assert g.structural_coherence(piece) == pytest.approx(0.5)


def test_rhythm_consistency_by_hand():
    # segment 0 = bars 0-3: onsets at beats 0,1,2, 4,5,6, ... 12,13,14 -> IOIs eight 1s and
    # three 2s; segment 1 = bar 4: beats 16, 18 -> one IOI of 2. Intersection = 3 / 11.
    assert g.rhythm_consistency(Piece(build_score(LOOP))) == pytest.approx(3 / 11)


def test_chord_tone_ratio_with_annotations(four_bars):
    # C major over the first 4 s (bars 0-1), no chord afterwards. Under it: C E G C D D
    # -> 4 chord tones of 6; bar 3's notes sound under no chord and are not judged.
    spans = [ChordSpan(0.0, 4.0, Chord(0, "maj")), ChordSpan(4.0, 8.0, None)]
    assert g.chord_tone_ratio(Piece(four_bars, chords=spans)) == pytest.approx(4 / 6)
    assert math.isnan(g.chord_tone_ratio(Piece(four_bars, chords=[])))
