"""Chord-symbol parsing for POP909 (Harte) and WJazzD (lead-sheet) labels."""
from __future__ import annotations

import pandas as pd
import pytest

from datamodules.chords import (
    CHORD_QUALITIES,
    NO_CHORD_LABELS,
    Chord,
    parse_chord,
    parse_pop909_chord,
    parse_wjazzd_chord,
    voice_chord,
)

C, Db, D, Eb, E, F, Gb, G, Ab, A, Bb, B = range(12)


@pytest.mark.parametrize("label, expected", [
    ("B:maj7", Chord(B, "maj7")),
    ("C#:min", Chord(Db, "min")),
    ("A:7", Chord(A, "7")),
    ("G:sus4(b7)", Chord(G, "7sus4")),
    ("C:maj/3", Chord(C, "maj", bass=E)),
    ("A:min7/b7", Chord(A, "min7", bass=G)),
    ("B:maj7/7", Chord(B, "maj7", bass=Bb)),
    ("Bb:maj6", Chord(Bb, "6")),
    ("F#:hdim7", Chord(Gb, "hdim7")),
    ("Eb:minmaj7", Chord(Eb, "minmaj7")),
    ("C:maj(9)", Chord(C, "maj")),  # add9 is not canonical: reduces to the triad
    ("D:dim7", Chord(D, "dim7")),
])
def test_pop909_examples(label, expected):
    assert parse_pop909_chord(label) == expected


@pytest.mark.parametrize("label, expected", [
    ("Bb6", Chord(Bb, "6")),
    ("C-7", Chord(C, "min7")),
    ("F7alt", Chord(F, "7alt")),
    ("Ebj7", Chord(Eb, "maj7")),
    ("Bbm7b5", Chord(Bb, "hdim7")),
    ("D79#", Chord(D, "7#9")),
    ("A79b", Chord(A, "7b9")),
    ("C/E", Chord(C, "maj", bass=E)),
    ("F-7/Bb", Chord(F, "min7", bass=Bb)),
    ("Go7", Chord(G, "dim7")),
    ("Absus7", Chord(Ab, "7sus4")),
    ("C-j7911#", Chord(C, "minmaj9")),  # #11 dropped: nearest canonical chord it contains
    ("Bb79b13b", Chord(Bb, "7b9")),
    ("Cb7", Chord(B, "7")),
    ("A+7", Chord(A, "aug7")),
    ("Ebj79#11#", Chord(Eb, "maj7#11")),
    ("Db-69/Db", Chord(Db, "min69")),  # bass equal to the root is no slash chord
])
def test_wjazzd_examples(label, expected):
    assert parse_wjazzd_chord(label) == expected


def test_no_chord_and_junk_give_none():
    for label in ("N", "NC", "", "nan"):
        assert label in NO_CHORD_LABELS
        assert parse_pop909_chord(label) is None and parse_wjazzd_chord(label) is None
    assert parse_pop909_chord("H:maj") is None
    assert parse_wjazzd_chord("not a chord") is None


def test_pitch_classes_and_both_formats_agree():
    assert Chord(C, "7").pitch_classes() == {0, 4, 7, 10}
    assert Chord(D, "min9").pitch_classes() == {2, 5, 9, 0, 4}
    assert Chord(C, "maj", bass=D).pitch_classes() == {0, 2, 4, 7}
    assert parse_chord("Bb:min7") == parse_chord("Bb-7") == parse_chord("A#-7")


def test_every_quality_has_root_and_sorted_tensions():
    for name, intervals in CHORD_QUALITIES.items():
        assert intervals[0] == 0, name
        assert list(intervals) == sorted(intervals), name


def test_voice_chord_is_close_and_at_or_above_low():
    assert voice_chord(Chord(C, "maj"), low=48) == [48, 52, 55]
    assert voice_chord(Chord(A, "min7"), low=48) == [57, 60, 64, 67]
    assert voice_chord(Chord(C, "maj", bass=E), low=48) == [52, 55, 60]  # first inversion
    for quality in CHORD_QUALITIES:
        for root in range(12):
            chord = Chord(root, quality)
            pitches = voice_chord(chord, low=50)
            assert pitches[0] >= 50 and pitches[0] < 62
            assert pitches == sorted(set(pitches))
            assert {p % 12 for p in pitches} == chord.pitch_classes()


def _pop909_labels(root) -> set[str]:
    labels = set()
    for path in sorted(root.glob("*/chord_midi.txt")):
        labels.update(line.split()[2] for line in path.read_text().splitlines() if line.strip())
    return labels


def _wjazzd_labels(root) -> set[str]:
    labels = set()
    for path in sorted(root.glob("mcsv_*/*.csv")):
        labels.update(pd.read_csv(path, usecols=["chord"])["chord"].dropna().astype(str))
    return labels


@pytest.mark.realdata
def test_every_real_label_parses(shared_data, capsys):
    pop = _pop909_labels(shared_data / "pop909")
    jazz = _wjazzd_labels(shared_data / "wjazzd")
    assert len(pop) > 200 and len(jazz) > 300
    for labels, parse in ((pop, parse_pop909_chord), (jazz, parse_wjazzd_chord)):
        failed = sorted(l for l in labels if parse(l) is None and l not in NO_CHORD_LABELS)
        assert not failed, failed
    with capsys.disabled():
        print(f"\ndistinct chord labels: POP909 {len(pop)}, WJazzD {len(jazz)}")
