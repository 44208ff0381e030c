"""Template-matching chord recogniser: one chord per beat from the sounding notes.

Each beat's pitch-class profile (ticks each pitch class sounds, normalised to sum 1) is
scored against every chord quality of `datamodules.chords.CHORD_QUALITIES` on all 12 roots
(Pardo & Birmingham 2002 style): weight inside the template, minus weight outside, minus a
small cost per template tone that does not sound. Ties go to the template whose root is
the lowest sounding pitch class, then to the simpler (earlier listed) quality.
"""
from __future__ import annotations

import numpy as np

from datamodules.chords import CHORD_QUALITIES, Chord
from metrics.notes import ChordSpan, Piece

MISSING_TONE_COST = 0.1
EXTRA_TONE_COST = 0.1  # per template tone beyond a triad: a passing note is not a 7th
BASS_ROOT_BONUS = 0.1  # the lowest note is the root more often than not
# 5ths and stacked extensions are rarely identifiable from a beat of notes: keep the
# qualities a lead sheet's harmonic rhythm is made of
RECOGNISED_QUALITIES = ("maj", "min", "dim", "aug", "sus4", "7", "maj7", "min7", "hdim7",
                        "dim7", "6", "min6")


def _templates(qualities: tuple[str, ...]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    rows, labels = [], []
    for quality in qualities:
        pcs = {i % 12 for i in CHORD_QUALITIES[quality]}
        for root in range(12):
            row = np.zeros(12, dtype=bool)
            row[[(root + pc) % 12 for pc in pcs]] = True
            rows.append(row)
            labels.append((root, quality))
    return np.asarray(rows), labels


_TEMPLATES, _LABELS = _templates(RECOGNISED_QUALITIES)
_EXTRA_TONES = np.maximum(_TEMPLATES.sum(axis=1) - 3, 0)
_LIST_ORDER = np.arange(len(_LABELS)) / len(_LABELS)  # last tie-break: earlier quality


def beat_profiles(onset: np.ndarray, offset: np.ndarray, pitch: np.ndarray,
                  beats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(beats-1, 12) sounding ticks per pitch class, and each beat's lowest pitch (-1 if none)."""
    n = len(beats) - 1
    profile = np.zeros((n, 12))
    lowest = np.full(n, 128)
    first = np.clip(np.searchsorted(beats, onset, side="right") - 1, 0, n - 1)
    last = np.clip(np.searchsorted(beats, np.maximum(offset - 1, onset), side="right") - 1, 0, n - 1)
    for start, stop, p, b0, b1 in zip(onset, offset, pitch, first, last):
        for b in range(b0, b1 + 1):
            overlap = min(stop, beats[b + 1]) - max(start, beats[b])
            if overlap > 0:
                profile[b, p % 12] += overlap
                lowest[b] = min(lowest[b], p)
    lowest[lowest == 128] = -1
    return profile, lowest


def recognise_profile(profile: np.ndarray, lowest: np.ndarray) -> list[Chord | None]:
    """Best template per row of `profile`; None for silent rows."""
    total = profile.sum(axis=1, keepdims=True)
    weights = np.divide(profile, total, out=np.zeros_like(profile), where=total > 0)
    inside = weights @ _TEMPLATES.T  # (beats, templates)
    missing = (weights[:, None, :] == 0) & _TEMPLATES[None, :, :]
    score = 2 * inside - 1 - MISSING_TONE_COST * missing.sum(axis=2)
    roots = np.array([root for root, _ in _LABELS])
    bass_is_root = roots[None, :] == (lowest[:, None] % 12)
    score = (score - EXTRA_TONE_COST * _EXTRA_TONES[None, :] + BASS_ROOT_BONUS * bass_is_root
             - 1e-9 * _LIST_ORDER[None, :])
    best = np.argmax(score, axis=1)
    chords: list[Chord | None] = []
    for row, index in enumerate(best):
        if total[row, 0] <= 0:
            chords.append(None)
            continue
        root, quality = _LABELS[index]
        bass = int(lowest[row] % 12)
        in_chord = bass in {(root + i) % 12 for i in CHORD_QUALITIES[quality]}
        chords.append(Chord(root, quality, None if bass == root or not in_chord else bass))
    return chords


def recognise_chords(piece: Piece) -> list[ChordSpan]:
    """One ChordSpan (seconds) per beat of the piece, from all pitched notes."""
    notes = piece.notes
    beats = piece.beats
    if len(notes) == 0 or len(beats) < 2:
        return []
    profile, lowest = beat_profiles(notes.onset, notes.offset, notes.pitch, beats)
    chords = recognise_profile(profile, lowest)
    seconds = piece.seconds_of_ticks(beats)
    return [ChordSpan(float(seconds[i]), float(seconds[i + 1]), chord)
            for i, chord in enumerate(chords)]


def chord_at(spans: list[ChordSpan], times_s: np.ndarray) -> list[Chord | None]:
    """The chord sounding at each time (None outside every span or in a no-chord span)."""
    if not spans:
        return [None] * len(times_s)
    starts = np.array([s.start_s for s in spans])
    ends = np.array([s.end_s for s in spans])
    index = np.searchsorted(starts, times_s, side="right") - 1
    return [spans[i].chord if i >= 0 and t < ends[i] else None for i, t in zip(index, times_s)]


def same_chord_family(a: Chord | None, b: Chord | None) -> bool:
    """Same root and same third (major, minor, or neither): a lenient agreement measure."""
    if a is None or b is None:
        return a is b

    def third(chord: Chord) -> int:
        pcs = {i % 12 for i in CHORD_QUALITIES[chord.quality]}
        return 4 if 4 in pcs else 3 if 3 in pcs else 0

    return a.root == b.root and third(a) == third(b)
