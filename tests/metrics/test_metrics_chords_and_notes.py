"""Chord recogniser, chord-track reading, bar grid and seconds."""
from __future__ import annotations

import numpy as np
import pytest
import symusic
from metrics_fixtures import build_score

from datamodules.chords import CHORD_QUALITIES, Chord, voice_chord
from metrics.annotations import chord_of_voicing, chord_track_spans
from metrics.chord_recognition import recognise_chords, recognise_profile
from metrics.notes import Piece, bar_lines


def _profile(*pcs_weights):
    profile = np.zeros((1, 12))
    for pc, weight in pcs_weights:
        profile[0, pc] += weight
    return profile


@pytest.mark.parametrize("pcs, lowest, expected", [
    ([(0, 1), (4, 1), (7, 1)], 48, Chord(0, "maj")),
    ([(9, 1), (0, 1), (4, 1)], 57, Chord(9, "min")),
    ([(7, 1), (11, 1), (2, 1), (5, 1)], 43, Chord(7, "7")),
    ([(0, 2), (4, 1), (7, 1), (2, 0.2)], 48, Chord(0, "maj")),  # a short passing D
    ([(0, 1), (4, 1), (7, 1)], 52, Chord(0, "maj", 4)),  # first inversion
])
def test_recogniser_templates(pcs, lowest, expected):
    assert recognise_profile(_profile(*pcs), np.array([lowest])) == [expected]


def test_recogniser_silence_is_no_chord():
    assert recognise_profile(np.zeros((1, 12)), np.array([-1])) == [None]


def test_recognise_chords_per_beat():
    # beat 1: C E G, beat 2: A C E (tpq 4, 120 qpm -> beats of 0.5 s)
    score = build_score([(0, 4, 60), (0, 4, 64), (0, 4, 67), (4, 4, 57), (4, 4, 60), (4, 4, 64)])
    spans = recognise_chords(Piece(score))
    assert [s.chord for s in spans[:2]] == [Chord(0, "maj"), Chord(9, "min")]
    assert spans[1].start_s == pytest.approx(0.5) and spans[1].end_s == pytest.approx(1.0)


@pytest.mark.parametrize("quality", sorted(CHORD_QUALITIES))
def test_chord_track_voicings_read_back(quality):
    for chord in (Chord(2, quality), Chord(10, quality)):
        read = chord_of_voicing(voice_chord(chord))
        assert read is not None and read.pitch_classes() == chord.pitch_classes()


def test_chord_track_spans_in_seconds():
    score = build_score([(0, 4, 72)])
    track = symusic.Track("CHORDS", 0, False)
    for start, chord in ((0, Chord(0, "maj7")), (16, Chord(7, "7"))):
        for pitch in voice_chord(chord):
            track.notes.append(symusic.Note(start, 16, pitch, 60))
    score.tracks.append(track)
    spans = chord_track_spans(score)
    assert [(s.start_s, s.end_s, s.chord) for s in spans] == [
        (0.0, 2.0, Chord(0, "maj7")), (2.0, 4.0, Chord(7, "7"))]
    assert chord_track_spans(build_score([(0, 4, 60)])) is None


def test_bar_lines_follow_time_signature_changes():
    # tpq 4: two 3/4 bars (12 ticks), then 6/8 bars (12 ticks) from tick 24, up to tick 50
    score = build_score([(0, 4, 60)], time_signature=(3, 4))
    score.time_signatures.append(symusic.TimeSignature(24, 6, 8))
    assert bar_lines(score, 50).tolist() == [0, 12, 24, 36, 48, 60]
    # a change in mid-bar starts a new bar there
    score2 = build_score([(0, 4, 60)])
    score2.time_signatures.append(symusic.TimeSignature(20, 2, 4))
    assert bar_lines(score2, 30).tolist() == [0, 16, 20, 28, 36]


def test_a_last_onset_on_a_bar_line_gets_its_own_bar():
    # a zero-length note at tick 16 ends the piece exactly on the second bar line
    from metrics import musdr

    piece = Piece(build_score([(0, 4, 60), (16, 0, 62)]))
    assert piece.bars.tolist() == [0, 16, 32]
    assert piece.bar_position(np.array([16]), 64)[0].tolist() == [1]
    assert musdr.groove_similarity(piece) == pytest.approx(1.0)  # both bars: onset at 0


def test_seconds_follow_the_tempo_map():
    score = build_score([(0, 4, 60), (8, 4, 62)])  # 120 qpm: tick = 0.125 s
    score.tempos.append(symusic.Tempo(4, 60.0))  # from tick 4 on: tick = 0.25 s
    piece = Piece(score)
    assert piece.seconds_of_ticks(np.array([0, 4, 8])).tolist() == pytest.approx([0, 0.5, 1.5])
    assert piece.notes.onset_s.tolist() == pytest.approx([0.0, 1.5])
