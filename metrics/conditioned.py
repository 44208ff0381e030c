"""Metrics of a generated part heard against its conditioning (role-conditioned generation).

The chords a part is judged against come from the conditioning: its block-chord track when it
has one (WJazzD's CHORDS), else the template recogniser over all conditioning notes. Besides
the registry's metrics, `long_gap_count` counts the silences >= 180 ms (long_gap_rate is the
same count per minute).
"""
from __future__ import annotations

import math

import numpy as np
import symusic

from metrics.annotations import chord_track_spans
from metrics.chord_recognition import recognise_chords
from metrics.generation import LONG_GAP_SECONDS, silent_gaps
from metrics.notes import ChordSpan, Piece
from metrics.registry import compute_metrics

ROLE_METRICS = ["chord_tone_ratio", "repetition_rate", "note_density", "dead_air_ratio", "long_gap_rate",
                "pitch_class_entropy", "scale_consistency"]


def conditioning_chords(conditioning: symusic.Score) -> list[ChordSpan]:
    spans = chord_track_spans(conditioning)
    return spans if spans is not None else recognise_chords(Piece(conditioning))


def long_gap_count(piece: Piece) -> float:
    if len(piece.notes) == 0:
        return math.nan
    return float(np.sum(silent_gaps(piece) >= LONG_GAP_SECONDS))


def score_part(part: symusic.Score, conditioning: symusic.Score | None, names: list[str] | None = None,
               name: str = "") -> dict[str, float]:
    """{metric: value} of `part`, chord metrics against the conditioning's chords; nan = undefined."""
    names = list(names or ROLE_METRICS)
    chords = conditioning_chords(conditioning) if conditioning is not None else None
    piece = Piece(part, chords=chords, name=name)
    values, _ = compute_metrics(piece, names)
    values["long_gap_count"] = long_gap_count(piece)
    values["n_notes"] = float(len(piece.notes))
    return values
