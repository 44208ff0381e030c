"""Metric name -> function registry, so configs select metrics by name.

Every metric takes a `metrics.notes.Piece` and returns a float (nan = undefined for this
piece, e.g. CPI of a piece with fewer than three chords).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from metrics import generation, musdr, muspy_compat
from metrics.notes import Piece

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[[Piece], float]
    family: str  # "musdr" | "muspy" | "generation"
    description: str
    slow: bool = False  # the SI family: O(N^4) scape plot, seconds per piece


_SPECS = [
    MetricSpec("H1", musdr.h1, "musdr", "pitch-class entropy (bits), 1-bar windows"),
    MetricSpec("H4", musdr.h4, "musdr", "pitch-class entropy (bits), 4-bar windows"),
    MetricSpec("GS", musdr.groove_similarity, "musdr", "grooving similarity, all bar pairs"),
    MetricSpec("CPI", musdr.chord_progression_irregularity, "musdr",
               "distinct chord trigrams / trigrams"),
    MetricSpec("SI_short", musdr.si_short, "musdr", "structureness 3-8 s", slow=True),
    MetricSpec("SI_mid", musdr.si_mid, "musdr", "structureness 8-15 s", slow=True),
    MetricSpec("SI_long", musdr.si_long, "musdr", "structureness >= 15 s", slow=True),
    MetricSpec("pitch_class_entropy", muspy_compat.pitch_class_entropy, "muspy",
               "entropy (bits) of the pitch-class histogram"),
    MetricSpec("scale_consistency", muspy_compat.scale_consistency, "muspy",
               "largest in-scale rate over 24 major/minor scales"),
    MetricSpec("groove_consistency", muspy_compat.groove_consistency, "muspy",
               "1 - hamming distance of neighbouring measures' onsets"),
    MetricSpec("empty_beat_rate", muspy_compat.empty_beat_rate, "muspy",
               "share of quarter-note beats without a note"),
    MetricSpec("polyphony", muspy_compat.polyphony, "muspy",
               "mean pitches sounding when any sounds"),
    MetricSpec("pitch_range", muspy_compat.pitch_range, "muspy", "highest - lowest pitch"),
    MetricSpec("n_pitches_used", muspy_compat.n_pitches_used, "muspy", "distinct pitches"),
    MetricSpec("chord_tone_ratio", generation.chord_tone_ratio, "generation",
               "share of notes that are tones of the sounding chord"),
    MetricSpec("repetition_rate", generation.repetition_rate, "generation",
               "share of bars identical to the bar before"),
    MetricSpec("note_density", generation.note_density, "generation", "onsets per second"),
    MetricSpec("dead_air_ratio", generation.dead_air_ratio, "generation",
               "silent share between first onset and last offset"),
    MetricSpec("long_gap_rate", generation.long_gap_rate, "generation",
               "silences >= 180 ms per minute"),
    MetricSpec("pentatonic_adherence", generation.pentatonic_adherence, "generation",
               "largest in-pentatonic rate over 12 roots"),
    MetricSpec("diversity", generation.diversity, "generation", "distinct pitch 4-grams / 4-grams"),
    MetricSpec("rhythm_consistency", generation.rhythm_consistency, "generation",
               "IOI histogram intersection of consecutive 4-bar segments"),
    MetricSpec("structural_coherence", generation.structural_coherence, "generation",
               "share of 2-bar phrases recurring elsewhere"),
]
METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}
METRIC_SETS = {
    "all": [s.name for s in _SPECS],
    "fast": [s.name for s in _SPECS if not s.slow],
    "musdr": [s.name for s in _SPECS if s.family == "musdr"],
    "muspy": [s.name for s in _SPECS if s.family == "muspy"],
    "generation": [s.name for s in _SPECS if s.family == "generation"],
}


def resolve_names(selection: str | Iterable[str] | None) -> list[str]:
    """A set name ("all", "fast", a family) or a list of metric names -> metric names."""
    if selection is None:
        return list(METRIC_SETS["all"])
    if isinstance(selection, str):
        if selection in METRIC_SETS:
            return list(METRIC_SETS[selection])
        selection = [selection]
    names = list(selection)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)} "
                       f"or sets {sorted(METRIC_SETS)}")
    return names


def compute_metrics(piece: Piece, names: Iterable[str]) -> tuple[dict[str, float], dict[str, str]]:
    """(values, errors): a metric that raises gets nan and its error message, others go on."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in names:
        try:
            value = float(METRICS[name].fn(piece))
        # one broken metric must not cost the file its other metrics: logged and reported
        except Exception as err:  # noqa: BLE001
            log.warning("metric %s failed on %s: %r", name, piece.name or "<piece>", err)
            values[name], errors[name] = math.nan, f"{type(err).__name__}: {err}"[:200]
            continue
        values[name] = value
    return values, errors
