"""One segment's model input: a row per score note = score features + the aligned performed
note's features + performance deviations (local tempo, onset deviation, articulation), plus the
hierarchy indices (beat, measure, voice) the HAN needs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.percepiano.alignment import Alignment, align
from datamodules.percepiano.features import PERF_COLUMNS, PerformanceNotes
from datamodules.percepiano.score_features import SCORE_COLUMNS, ScoreNotes

DEVIATION_COLUMNS = ("matched", "log_local_tempo", "tempo_ratio", "onset_deviation", "articulation",
                     "velocity_deviation")
FEATURE_NAMES = (*SCORE_COLUMNS, *PERF_COLUMNS, *DEVIATION_COLUMNS)


@dataclass
class NoteTable:
    features: np.ndarray  # (S, F) float32 in FEATURE_NAMES order
    beat: np.ndarray      # (S,) int64 beat index from the segment start
    measure: np.ndarray   # (S,) int64
    voice: np.ndarray     # (S,) int64 staff * max_voices + voice - 1
    alignment: Alignment


def time_map(score_onset: np.ndarray, perf_onset: np.ndarray, score_to_perf: np.ndarray):
    """Monotone score-quarter -> performance-second map through the matched onset events."""
    ok = score_to_perf >= 0
    q, t = score_onset[ok], perf_onset[score_to_perf[ok]]
    uq = np.unique(q)
    ut = np.array([np.median(t[q == v]) for v in uq])
    ut = np.maximum.accumulate(ut)
    return uq, ut


def interp_extrap(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    if len(xp) == 1:
        return fp[0] + (x - xp[0]) * 0.5  # one point: assume 120 qpm around it
    y = np.interp(x, xp, fp)
    lo_slope = (fp[1] - fp[0]) / max(xp[1] - xp[0], 1e-6)
    hi_slope = (fp[-1] - fp[-2]) / max(xp[-1] - xp[-2], 1e-6)
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo_slope, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi_slope, y)


def build_note_table(score: ScoreNotes, perf: PerformanceNotes, tempo_window: float = 2.0,
                     search_events: int = 3) -> NoteTable:
    """Align and assemble features; `tempo_window` (quarters, each side) smooths the local tempo."""
    al = align(score.pitch, score.onset, perf.pitch, search_events=search_events)
    S = len(score)
    perf_feats = np.zeros((S, len(PERF_COLUMNS)), dtype=np.float32)
    dev = np.zeros((S, len(DEVIATION_COLUMNS)), dtype=np.float32)
    ok = al.score_to_perf >= 0
    if ok.sum() >= 1:
        perf_feats[ok] = perf.matrix()[al.score_to_perf[ok]]
        uq, ut = time_map(score.onset, perf.onset, al.score_to_perf)
        expected = interp_extrap(score.onset, uq, ut)
        span = interp_extrap(score.onset + tempo_window, uq, ut) - interp_extrap(score.onset - tempo_window, uq, ut)
        sec_per_quarter = np.clip(span / (2 * tempo_window), 0.05, 5.0)
        qpm = 60.0 / sec_per_quarter
        dev[:, 1] = np.log(qpm)
        dev[:, 2] = np.log(qpm / np.maximum(score.tempo, 1.0))
        m = al.score_to_perf[ok]
        dev[ok, 3] = perf.onset[m] - expected[ok]
        score_seconds = score.duration[ok] * sec_per_quarter[ok]
        dev[ok, 4] = np.where(score.duration[ok] > 0,
                              np.log(np.maximum(perf.duration[m], 1e-3) / np.maximum(score_seconds, 1e-3)), 0.0)
        dev[ok, 5] = perf.velocity[m] - perf.velocity[m].mean()
    dev[:, 0] = ok
    features = np.concatenate([score.matrix(), perf_feats, dev], axis=1).astype(np.float32)
    return NoteTable(features, score.beat.copy(), score.measure.copy(), score.voice_index.copy(), al)


def file_digest(paths: list[Path | None]) -> str:
    import hashlib

    h = hashlib.sha1()
    for p in paths:
        if p is not None:
            h.update(Path(p).read_bytes())
    return h.hexdigest()


def extract_segment(perf_path: Path, score_midi: Path, score_xml: Path | None, xml_cache,
                    tempo_window: float = 2.0, search_events: int = 3, max_voices: int = 4) -> NoteTable:
    """Features of one performance against its score (used by the DataModule and by inference)."""
    from datamodules.percepiano.features import load_performance
    from datamodules.percepiano.score_features import score_notes

    score = score_notes(score_midi, score_xml, xml_cache, max_voices=max_voices)
    return build_note_table(score, load_performance(perf_path), tempo_window, search_events)
