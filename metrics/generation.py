"""Generation-quality metrics: what goes wrong with generated music, measured on a Piece.

Definitions (pitched notes only; "bar content" = set of (16th position in bar, pitch)):
- chord_tone_ratio: share of notes sounding under a chord whose pitch class is a chord tone.
- repetition_rate: share of non-empty bars (after the first) identical to the bar before.
- note_density: onsets per second, first onset to last offset.
- dead_air_ratio: silent share of [first onset, last offset].
- long_gap_rate: silences >= 180 ms per minute in that span.
- pentatonic_adherence: largest share of notes inside one pentatonic scale (12 roots;
  the minor pentatonics are the same sets).
- diversity: distinct pitch 4-grams / all pitch 4-grams of the onset-ordered notes.
- rhythm_consistency: mean histogram intersection of the IOI histograms (in beats) of
  consecutive 4-bar segments.
- structural_coherence: share of non-empty 2-bar phrases whose exact content recurs at a
  non-overlapping place elsewhere in the piece.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import numpy as np

from metrics.chord_recognition import chord_at
from metrics.muspy_compat import scale_rates
from metrics.notes import Piece

LONG_GAP_SECONDS = 0.18
PENTATONIC = np.array([1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0], dtype=bool)
DIVERSITY_N = 4
IOI_BINS = np.arange(0, 4 + 1 / 12 + 1e-9, 1 / 12)  # beats, 1/12-beat bins (16ths and triplets)
RHYTHM_SEGMENT_BARS = 4
PHRASE_BARS = 2


def chord_tone_ratio(piece: Piece) -> float:
    notes = piece.notes
    chords = chord_at(piece.chords, notes.onset_s)
    judged = [(p % 12) in chord.pitch_classes() for p, chord in zip(notes.pitch, chords)
              if chord is not None]
    return float(np.mean(judged)) if judged else float("nan")


def bar_contents(piece: Piece, positions: int = 16) -> list[frozenset]:
    """Per bar (bar 0 .. bar of the last onset), its set of (position, pitch)."""
    notes = piece.notes
    if len(notes) == 0:
        return []
    bar, position = piece.bar_position(notes.onset, positions)
    contents: list[set] = [set() for _ in range(int(bar.max()) + 1)]
    for b, pos, p in zip(bar, position, notes.pitch):
        contents[b].add((int(pos), int(p)))
    return [frozenset(c) for c in contents]


def repetition_rate(piece: Piece) -> float:
    bars = bar_contents(piece)
    pairs = [(a, b) for a, b in pairwise(bars) if b]
    return float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")


def _sounding_span(piece: Piece) -> tuple[float, float]:
    notes = piece.notes
    return float(notes.onset_s.min()), float(notes.offset_s.max())


def note_density(piece: Piece) -> float:
    if len(piece.notes) == 0:
        return float("nan")
    start, end = _sounding_span(piece)
    return len(piece.notes) / max(end - start, 1e-3)


def silent_gaps(piece: Piece) -> np.ndarray:
    """Lengths (s) of the silences between the first onset and the last offset."""
    notes = piece.notes
    if len(notes) == 0:
        return np.zeros(0)
    order = np.argsort(notes.onset_s, kind="stable")
    starts, ends = notes.onset_s[order], notes.offset_s[order]
    reach = np.maximum.accumulate(ends)
    gaps = starts[1:] - reach[:-1]
    return gaps[gaps > 0]


def dead_air_ratio(piece: Piece) -> float:
    if len(piece.notes) == 0:
        return float("nan")
    start, end = _sounding_span(piece)
    return float(silent_gaps(piece).sum() / max(end - start, 1e-3))


def long_gap_rate(piece: Piece) -> float:
    if len(piece.notes) == 0:
        return float("nan")
    start, end = _sounding_span(piece)
    return float((silent_gaps(piece) >= LONG_GAP_SECONDS).sum() / max(end - start, 1e-3) * 60)


def pentatonic_adherence(piece: Piece) -> float:
    pitch = piece.notes.pitch
    return float(scale_rates(pitch, [PENTATONIC]).max()) if pitch.size else float("nan")


def distinct_ngram_ratio(tokens: list | np.ndarray, n: int) -> float:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def diversity(piece: Piece) -> float:
    return distinct_ngram_ratio(piece.notes.pitch.tolist(), DIVERSITY_N)


def ioi_histogram(onsets_beats: np.ndarray) -> np.ndarray | None:
    """Normalised histogram of inter-onset intervals (distinct onsets), None if none."""
    iois = np.diff(np.unique(onsets_beats))
    if iois.size == 0:
        return None
    hist, _ = np.histogram(np.minimum(iois, IOI_BINS[-1] - 1e-9), bins=IOI_BINS)
    return hist / hist.sum()


def rhythm_consistency(piece: Piece) -> float:
    notes = piece.notes
    if len(notes) == 0:
        return float("nan")
    segment = piece.bar_index(notes.onset) // RHYTHM_SEGMENT_BARS
    beats = notes.onset / piece.tpq
    hists = [ioi_histogram(beats[segment == s]) for s in range(int(segment.max()) + 1)]
    pairs = [(a, b) for a, b in pairwise(hists) if a is not None and b is not None]
    return float(np.mean([np.minimum(a, b).sum() for a, b in pairs])) if pairs else float("nan")


def structural_coherence(piece: Piece) -> float:
    bars = bar_contents(piece)
    phrases = [tuple(bars[i:i + PHRASE_BARS]) for i in range(len(bars) - PHRASE_BARS + 1)]
    starts_of: dict[tuple, list[int]] = defaultdict(list)
    for start, phrase in enumerate(phrases):
        starts_of[phrase].append(start)
    judged = [any(abs(other - start) >= PHRASE_BARS for other in starts_of[phrase])
              for start, phrase in enumerate(phrases) if any(phrase)]
    return float(np.mean(judged)) if judged else float("nan")
