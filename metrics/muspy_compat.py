"""Metrics with muspy's names and semantics (muspy.metrics, Dong et al. 2020), on a Piece.

Where muspy counts drum tracks too (groove_consistency, empty_beat_rate) so do these.
One difference: with no pitched note, pitch_range is nan (muspy returns 0, or -127 when
only drums play), like the other pitch metrics.
"""
from __future__ import annotations

import numpy as np

from metrics.musdr import histogram_entropy
from metrics.notes import Piece

MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)


def union_length(starts: np.ndarray, ends: np.ndarray) -> int:
    """Total length covered by the union of [start, end) intervals."""
    if starts.size == 0:
        return 0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    covered_before = np.concatenate([[s[0]], reach[:-1]])
    return int(np.maximum(0, e - np.maximum(s, covered_before)).sum())


def pitch_class_entropy(piece: Piece) -> float:
    return histogram_entropy(np.bincount(piece.notes.pitch % 12, minlength=12))


def pitch_entropy(piece: Piece) -> float:
    return histogram_entropy(np.bincount(piece.notes.pitch, minlength=128))


def scale_rates(pitch: np.ndarray, scales: list[np.ndarray]) -> np.ndarray:
    """Fraction of notes inside each scale transposed to each of the 12 roots: (scales, 12)."""
    counts = np.bincount(pitch % 12, minlength=12)
    rates = [[counts[np.roll(scale, root)].sum() / pitch.size for root in range(12)]
             for scale in scales]
    return np.asarray(rates)


def scale_consistency(piece: Piece) -> float:
    """Largest in-scale note rate over the 24 major and minor scales."""
    pitch = piece.notes.pitch
    if pitch.size == 0:
        return float("nan")
    return float(scale_rates(pitch, [MAJOR, MINOR]).max())


def muspy_length(piece: Piece) -> int:
    """muspy's song length: the last event of any track (notes, controllers, pedals, ...)."""
    return max((int(track.end()) for track in piece.score.tracks), default=0)


def default_measure_resolution(piece: Piece) -> int:
    """Ticks per measure of the first time signature (4/4 when none)."""
    signatures = sorted(piece.score.time_signatures, key=lambda ts: ts.time)
    numerator, denominator = ((signatures[0].numerator, signatures[0].denominator)
                              if signatures else (4, 4))
    return max(1, round(numerator * piece.tpq * 4 / denominator))


def groove_consistency(piece: Piece, measure_resolution: int | None = None) -> float:
    """1 - mean hamming distance between neighbouring measures' onset vectors / resolution.

    Measures are `measure_resolution` ticks long from tick 0 (constant meter, as muspy);
    the default is the first time signature's bar length.
    """
    resolution = measure_resolution or default_measure_resolution(piece)
    notes = piece.all_notes
    if len(notes) == 0:
        return float("nan")
    n_measures = muspy_length(piece) // resolution + 1
    if n_measures < 2:
        return float("nan")
    grid = np.zeros((n_measures, resolution), dtype=bool)
    measure, position = np.divmod(notes.onset, resolution)
    grid[measure, position] = True
    distance = np.count_nonzero(grid[:-1] != grid[1:])
    return float(1 - distance / (resolution * (n_measures - 1)))


def empty_beat_rate(piece: Piece) -> float:
    """Share of quarter-note beats where no note (drums included) sounds.

    As muspy: beat b spans [b*tpq, (b+1)*tpq) and a note touches beats onset//tpq through
    offset//tpq inclusive, so a note ending exactly on a beat line marks the next beat.
    """
    notes = piece.all_notes
    length = muspy_length(piece)
    if length < 1:
        return float("nan")
    n_beats = length // piece.tpq + 1
    touched = np.zeros(n_beats + 1, dtype=np.int64)
    np.add.at(touched, notes.onset // piece.tpq, 1)
    np.add.at(touched, notes.offset // piece.tpq + 1, -1)
    occupied = np.cumsum(touched)[:n_beats] > 0
    return float(1 - occupied.sum() / n_beats)


def polyphony(piece: Piece) -> float:
    """Mean number of pitches sounding, over the ticks where at least one sounds."""
    notes = piece.notes
    sounding = union_length(notes.onset, notes.offset)
    if sounding < 1:
        return float("nan")
    pitch_ticks = sum(union_length(notes.onset[notes.pitch == p], notes.offset[notes.pitch == p])
                      for p in np.unique(notes.pitch))
    return pitch_ticks / sounding


def pitch_range(piece: Piece) -> float:
    pitch = piece.notes.pitch
    return float(pitch.max() - pitch.min()) if pitch.size else float("nan")


def n_pitches_used(piece: Piece) -> int:
    return int(np.unique(piece.notes.pitch).size)


def n_pitch_classes_used(piece: Piece) -> int:
    return int(np.unique(piece.notes.pitch % 12).size)
