"""Performance-side features: one row per performed note, read from the performance MIDI.

The PercePiano performance MIDI carry a dummy 120 bpm tempo (no beat grid), so time is
read in seconds; the sustain (CC64) and soft (CC67) pedals are step functions of time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from datamodules.midi_io import load_score

SUSTAIN_CC, SOFT_CC = 64, 67
# column order of PerformanceNotes.matrix(); also the feature names in the cache
PERF_COLUMNS = ("p_pitch", "p_velocity", "p_onset", "p_duration", "p_ioi", "p_sustain_onset",
                "p_sustain_offset", "p_sustain_max", "p_soft_onset")


@dataclass
class PerformanceNotes:
    """Performed notes sorted by (onset, pitch); times in seconds from the file's first note."""
    pitch: np.ndarray       # (N,) int
    velocity: np.ndarray    # (N,) int 1..127
    onset: np.ndarray       # (N,) s
    duration: np.ndarray    # (N,) s
    ioi: np.ndarray         # (N,) s since the previous distinct onset (0 for the first / chord notes)
    sustain_onset: np.ndarray   # (N,) CC64 value / 127 at the note's onset
    sustain_offset: np.ndarray  # (N,) CC64 value / 127 at the note's release
    sustain_max: np.ndarray     # (N,) max CC64 / 127 while the note sounds
    soft_onset: np.ndarray      # (N,) CC67 value / 127 at the onset

    def __len__(self) -> int:
        return len(self.pitch)

    def matrix(self) -> np.ndarray:
        """(N, len(PERF_COLUMNS)) float32 in PERF_COLUMNS order."""
        return np.stack([self.pitch, self.velocity, self.onset, self.duration, self.ioi,
                         self.sustain_onset, self.sustain_offset, self.sustain_max,
                         self.soft_onset], axis=1).astype(np.float32)


class PedalCurve:
    """A controller as a step function of time: value(t) = last event at or before t (0 before)."""

    def __init__(self, times: np.ndarray, values: np.ndarray):
        order = np.argsort(times, kind="stable")
        self.times, self.values = times[order], values[order] / 127.0

    def at(self, t: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.times, t, side="right") - 1
        return np.where(idx >= 0, self.values[np.clip(idx, 0, None)], 0.0) if len(self.times) else np.zeros_like(t)

    def max_between(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        out = self.at(start)
        if len(self.times) == 0:
            return out
        lo = np.searchsorted(self.times, start, side="right")
        hi = np.searchsorted(self.times, end, side="right")
        for i in np.nonzero(hi > lo)[0]:  # only notes with pedal events inside them
            out[i] = max(out[i], self.values[lo[i]:hi[i]].max())
        return out


def controller_curve(score: symusic.Score, number: int) -> PedalCurve:
    times = [c.time for t in score.tracks for c in t.controls if c.number == number]
    values = [c.value for t in score.tracks for c in t.controls if c.number == number]
    if number == SUSTAIN_CC and not times:  # only symusic's parsed on/off pedals survive
        for p in (p for t in score.tracks for p in t.pedals):
            times += [p.time, p.time + p.duration]
            values += [127, 0]
    return PedalCurve(np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64))


def performance_notes(score: symusic.Score, chord_tolerance: float = 0.03) -> PerformanceNotes:
    """Features of every pitched note of a (seconds-timed or tick-timed) performance Score."""
    sec = score.to("second") if score.ttype != symusic.core.Second else score
    rows = [(n.time, n.pitch, n.duration, n.velocity) for t in sec.tracks if not t.is_drum for n in t.notes]
    rows.sort()
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    t0 = arr[0, 0] if len(arr) else 0.0
    onset, pitch, duration, velocity = arr[:, 0] - t0, arr[:, 1], np.maximum(arr[:, 2], 1e-3), arr[:, 3]
    # inter-onset interval between distinct onsets: the notes of one chord share their chord's ioi
    new_chord = np.diff(onset, prepend=-np.inf) > chord_tolerance
    chord_onsets = onset[new_chord]
    chord_ioi = np.diff(chord_onsets, prepend=chord_onsets[:1]) if len(chord_onsets) else chord_onsets
    ioi = chord_ioi[np.cumsum(new_chord) - 1] if len(onset) else onset
    sustain, soft = controller_curve(sec, SUSTAIN_CC), controller_curve(sec, SOFT_CC)
    sustain.times, soft.times = sustain.times - t0, soft.times - t0
    end = onset + duration
    return PerformanceNotes(pitch.astype(np.int64), velocity.astype(np.int64), onset, duration, ioi,
                            sustain.at(onset), sustain.at(end), sustain.max_between(onset, end),
                            soft.at(onset))


def load_performance(path: Path | str) -> PerformanceNotes:
    """Read a performance MIDI (MidiSkip with a reason when unusable) and compute its note features."""
    return performance_notes(load_score(path))
