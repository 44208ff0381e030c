"""MusDr metrics on hand-computed fixtures (values derived in the comments)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from metrics_fixtures import build_score

from datamodules.chords import Chord
from metrics import musdr
from metrics.notes import ChordSpan, Piece

C, F, G = Chord(0, "maj"), Chord(5, "maj"), Chord(7, "maj")


def test_pitch_class_entropy_windows_by_hand(four_bars):
    piece = Piece(four_bars)
    # H1: bar 0 {C:2, E:1, G:1} -> 1.5 bits; bar 1 {D:2} -> 0; bar 2 empty, skipped;
    # bar 3 {C, D, E, F} -> 2 bits. Mean of three windows = 3.5 / 3.
    assert musdr.h1(piece) == pytest.approx(3.5 / 3)
    # H4: one window, {C:3, D:3, E:2, F:1, G:1} of 10 notes.
    p = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    assert musdr.h4(piece) == pytest.approx(float(-(p * np.log2(p)).sum()))


def test_h4_slides_by_one_bar():
    # 5 bars; bar i holds one note of pitch class i (C, C#, D, D#, E): two 4-bar windows,
    # each with 4 equally likely pitch classes -> 2 bits each.
    piece = Piece(build_score([(16 * i, 4, 60 + i) for i in range(5)]))
    assert musdr.h4(piece) == pytest.approx(2.0)
    assert musdr.h1(piece) == pytest.approx(0.0)


def test_groove_similarity_all_pairs_by_hand(four_bars):
    # 64 positions per 16-tick bar (position = 4 * tick in bar). Onset sets:
    # bar0 {0,16,32,48}, bar1 {0,32}, bar2 {}, bar3 {0,16,32,48}. Hamming distances of
    # the 6 pairs: 2, 4, 0, 2, 2, 4 -> mean similarity (62+60+64+62+62+60) / (6*64).
    assert musdr.groove_similarity(Piece(four_bars)) == pytest.approx(370 / 384)


def test_groove_similarity_needs_two_bars():
    assert math.isnan(musdr.groove_similarity(Piece(build_score([(0, 4, 60)]))))


def test_groove_uses_the_time_signature():
    # 3/4 at tpq 4: 12-tick bars. Onsets at ticks 0 and 12 are both bar starts:
    # two identical bars -> GS 1. (In 4/4 tick 12 would be position 48 of bar 0.)
    score = build_score([(0, 4, 60), (12, 4, 60)], time_signature=(3, 4))
    assert musdr.groove_similarity(Piece(score)) == pytest.approx(1.0)


def test_cpi_counts_every_trigram():
    # C F G C F G C: trigrams CFG FGC GCF CFG FGC -> 3 distinct of 5 (the reference's
    # range(len - 3) would drop the last FGC and give 3/4).
    assert musdr.chord_progression_irregularity_of(list("CFGCFGC")) == pytest.approx(3 / 5)
    assert math.isnan(musdr.chord_progression_irregularity_of(list("CF")))


def test_cpi_from_annotations_drops_no_chord_and_merges_repeats(four_bars):
    labels = [C, C, None, F, G, C, F, G, C]
    spans = [ChordSpan(i, i + 1, chord) for i, chord in enumerate(labels)]
    piece = Piece(four_bars, chords=spans)
    assert [c[0] for c in musdr.chord_sequence(piece)] == [0, 5, 7, 0, 5, 7, 0]
    assert musdr.chord_progression_irregularity(piece) == pytest.approx(3 / 5)


def test_si_is_higher_for_a_repeated_phrase_than_for_random_notes():
    # 8 s phrase (4 bars at 120 qpm) of 16 distinct quarter notes, played 4 times, versus
    # 32 s of random pitches: the repeated one must show structure at 8-15 s.
    rng = np.random.default_rng(3)
    phrase = rng.choice(np.arange(60, 72), size=16)
    repeated = [(4 * i, 4, int(phrase[i % 16])) for i in range(64)]
    random = [(4 * i, 4, int(p)) for i, p in enumerate(rng.choice(np.arange(60, 72), size=64))]
    si_rep = musdr.si_mid(Piece(build_score(repeated)))
    si_rand = musdr.si_mid(Piece(build_score(random)))
    assert si_rep > si_rand + 0.1
    assert 0 <= si_rand <= 1 and 0 <= si_rep <= 1


def test_metrics_on_an_empty_piece_are_nan():
    piece = Piece(build_score([]))
    assert math.isnan(musdr.h1(piece)) and math.isnan(musdr.si_short(piece))
