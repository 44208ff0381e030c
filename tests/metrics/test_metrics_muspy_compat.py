"""muspy-compatible metrics: hand-computed fixtures, and agreement with muspy when installed."""
from __future__ import annotations

import math

import numpy as np
import pytest
from metrics_fixtures import build_score

from metrics import muspy_compat as mc
from metrics.notes import Piece


def test_pitch_metrics_by_hand(four_bars):
    piece = Piece(four_bars)
    p = np.array([0.3, 0.3, 0.2, 0.1, 0.1])  # C:3 D:3 E:2 F:1 G:1 of 10 notes
    assert mc.pitch_class_entropy(piece) == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert mc.pitch_range(piece) == 12  # 72 - 60
    assert mc.n_pitches_used(piece) == 6  # 60 62 64 65 67 72
    assert mc.scale_consistency(piece) == 1.0  # all in C major


def test_scale_consistency_counts_notes():
    # C, C, C#, D: no major/minor scale holds three adjacent semitones; the best ones
    # (C major: C C D; Db major: C C Db) hold 3 of 4 notes
    piece = Piece(build_score([(0, 4, 60), (4, 4, 72), (8, 4, 61), (12, 4, 62)]))
    assert mc.scale_consistency(piece) == pytest.approx(0.75)


def test_empty_beat_rate_by_hand(four_bars):
    # length 64 ticks -> 64 // 4 + 1 = 17 beats. Each one-beat note touches its own beat and,
    # ending on the next beat line, that one too (muspy's inclusive end): beats 0-7 and
    # 12-16 are touched, 13 of 17 -> 4 / 17 empty.
    assert mc.empty_beat_rate(Piece(four_bars)) == pytest.approx(4 / 17)


def test_groove_consistency_by_hand(four_bars):
    # 16-tick measures (4/4, tpq 4), 64 // 16 + 1 = 5 measures with onset sets
    # {0,4,8,12} {0,8} {} {0,4,8,12} {}: neighbour hamming 2+2+4+4 = 12 -> 1 - 12/64.
    assert mc.groove_consistency(Piece(four_bars)) == pytest.approx(1 - 12 / 64)
    # an explicit resolution of 8 ticks: 9 half-measures, onsets {0,4} {0,4} {0} {0} {} {}
    # {0,4} {0,4} {} -> distances 0+1+0+1+0+2+0+2 = 6 -> 1 - 6 / (8*8)
    assert mc.groove_consistency(Piece(four_bars), 8) == pytest.approx(1 - 6 / 64)


def test_polyphony_by_hand():
    # C4 [0,8), E4 [0,4), G4 [2,6), and C4 again [4,10) on a drum-free second voice:
    # sounding ticks = 10; per-pitch union ticks: C 10, E 4, G 4 -> 18 / 10.
    piece = Piece(build_score([(0, 8, 60), (0, 4, 64), (2, 4, 67), (4, 6, 60)]))
    assert mc.polyphony(piece) == pytest.approx(1.8)


def test_drums_are_excluded_from_pitch_metrics_but_count_as_sound():
    score = build_score([(0, 4, 60), (4, 4, 67)], drum_notes=[(16, 4, 36)])
    piece = Piece(score)
    assert mc.pitch_range(piece) == 7 and mc.n_pitches_used(piece) == 2
    # beats: length 20 -> 6 beats; notes touch 0,1,2 and the drum 4,5 -> 1 of 6 empty
    assert mc.empty_beat_rate(piece) == pytest.approx(1 / 6)
    assert math.isnan(mc.pitch_range(Piece(build_score([], drum_notes=[(0, 4, 36)]))))


MUSPY_METRICS = ["pitch_class_entropy", "scale_consistency", "empty_beat_rate", "polyphony",
                 "pitch_range", "n_pitches_used", "n_pitch_classes_used", "pitch_entropy"]


@pytest.mark.parametrize("song", ["001", "002", "050"])
def test_agrees_with_muspy_on_real_files(pop909_root, song):
    muspy = pytest.importorskip("muspy", reason="muspy not installed (optional test dependency)")
    path = pop909_root / song / f"{song}.mid"
    music = muspy.read_midi(path)
    import symusic

    piece = Piece(symusic.Score(path))
    for name in MUSPY_METRICS:
        assert getattr(mc, name)(piece) == pytest.approx(getattr(muspy, name)(music)), name
    resolution = mc.default_measure_resolution(piece)
    assert mc.groove_consistency(piece) == pytest.approx(
        muspy.groove_consistency(music, resolution))
