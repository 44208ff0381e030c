"""Score <-> quantised onset roll with velocities and durations on a beat-relative grid.

A roll is two (T, P) uint8 arrays on a grid of `steps_per_beat` steps per beat (16th notes by
default) over the pitches [pitch_low, pitch_low + P): `velocity[t, p]` is the velocity of a
note starting at step t (0 = no onset) and `duration[t, p]` its length in steps (clipped to
255). With beat annotations (POP909's `beat_midi.txt`) the grid follows the annotated beats,
so rubato and tempo drift do not smear the grid; without them it follows the score's ticks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import symusic

log = logging.getLogger(__name__)


@dataclass
class Roll:
    velocity: np.ndarray  # (T, P) uint8, 0 = no onset
    duration: np.ndarray  # (T, P) uint8 steps, 0 where no onset
    first_downbeat: int  # step of the first bar line (windows start on bar lines)
    qpm: float  # tempo to write when the roll goes back to MIDI
    dropped: int = 0  # notes outside the pitch range or before the grid starts

    @property
    def n_steps(self) -> int:
        return int(self.velocity.shape[0])


def beat_fraction(seconds: np.ndarray, beat_times: np.ndarray) -> np.ndarray:
    """Fractional beat index of times in seconds, linear between annotated beats and
    extrapolated with the first/last beat interval outside them."""
    beat_times = np.asarray(beat_times, dtype=np.float64)
    if beat_times.size < 2:
        raise ValueError(f"need at least 2 annotated beats to build a grid, got {beat_times.size}")
    idx = np.arange(beat_times.size, dtype=np.float64)
    frac = np.interp(seconds, beat_times, idx)
    first, last = beat_times[1] - beat_times[0], beat_times[-1] - beat_times[-2]
    frac = np.where(seconds < beat_times[0], (seconds - beat_times[0]) / first, frac)
    return np.where(seconds > beat_times[-1], idx[-1] + (seconds - beat_times[-1]) / last, frac)


def _note_table(score: symusic.Score) -> dict[str, np.ndarray]:
    """Pitched notes of all tracks as arrays (ticks and seconds)."""
    seconds = score.to("second")
    parts = {k: [] for k in ("time", "end", "time_s", "end_s", "pitch", "velocity")}
    for track, track_s in zip(score.tracks, seconds.tracks):
        if track.is_drum or len(track.notes) == 0:
            continue
        ticks, secs = track.notes.numpy(), track_s.notes.numpy()
        parts["time"].append(ticks["time"].astype(np.float64))
        parts["end"].append((ticks["time"] + ticks["duration"]).astype(np.float64))
        parts["time_s"].append(secs["time"].astype(np.float64))
        parts["end_s"].append((secs["time"] + secs["duration"]).astype(np.float64))
        parts["pitch"].append(ticks["pitch"].astype(np.int64))
        parts["velocity"].append(ticks["velocity"].astype(np.int64))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def score_to_roll(score: symusic.Score, steps_per_beat: int = 4, pitch_low: int = 21,
                  n_pitches: int = 88, beat_times: np.ndarray | None = None,
                  downbeat_times: np.ndarray | None = None) -> Roll:
    """Quantise a score's onsets to the grid (beat annotations when given, else ticks)."""
    notes = _note_table(score)
    if beat_times is not None and len(beat_times) >= 2:
        on = beat_fraction(notes["time_s"], beat_times) * steps_per_beat
        off = beat_fraction(notes["end_s"], beat_times) * steps_per_beat
        beat_s = np.diff(np.asarray(beat_times, dtype=np.float64))
        qpm = float(60.0 / np.median(beat_s))
        first_db = 0
        if downbeat_times is not None and len(downbeat_times):
            first_db = round(float(beat_fraction(np.asarray(downbeat_times[:1]), beat_times)[0]))
            first_db = max(first_db, 0) * steps_per_beat
    else:
        on = notes["time"] / score.tpq * steps_per_beat
        off = notes["end"] / score.tpq * steps_per_beat
        qpm = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
        first_db = 0
    start = np.rint(on).astype(np.int64)
    length = np.clip(np.rint(off).astype(np.int64) - start, 1, 255)
    pitch = notes["pitch"].astype(np.int64) - pitch_low
    keep = (start >= 0) & (pitch >= 0) & (pitch < n_pitches)
    n_steps = int(start[keep].max()) + 1 if keep.any() else 1
    velocity = np.zeros((n_steps, n_pitches), dtype=np.uint8)
    duration = np.zeros((n_steps, n_pitches), dtype=np.uint8)
    s, p = start[keep], pitch[keep]
    # two notes on one cell (unisons of two tracks): keep the loudest and the longest
    np.maximum.at(velocity, (s, p), np.clip(notes["velocity"][keep], 1, 127).astype(np.uint8))
    np.maximum.at(duration, (s, p), length[keep].astype(np.uint8))
    return Roll(velocity, duration, first_db, qpm, dropped=int((~keep).sum()))


def roll_to_score(velocity: np.ndarray, duration: np.ndarray, steps_per_beat: int = 4,
                  pitch_low: int = 21, qpm: float = 120.0, tpq: int = 480,
                  program: int = 0) -> symusic.Score:
    """(T, P) velocity/duration arrays -> a one-track Score (onsets with velocity > 0)."""
    velocity, duration = np.asarray(velocity), np.asarray(duration)
    if velocity.shape != duration.shape or velocity.ndim != 2:
        raise ValueError(f"velocity {velocity.shape} and duration {duration.shape} must be equal (T, P)")
    ticks_per_step = tpq // steps_per_beat
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, float(qpm)))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("fractal", program, False)
    steps, pitches = np.nonzero(velocity)
    for t, p in zip(steps.tolist(), pitches.tolist()):
        dur = max(int(duration[t, p]), 1) * ticks_per_step
        track.notes.append(symusic.Note(t * ticks_per_step, dur, p + pitch_low, int(velocity[t, p])))
    track.notes.sort()
    score.tracks.append(track)
    return score


def piece_chroma(score: symusic.Score) -> np.ndarray:
    """(12,) duration-weighted pitch-class profile scaled to max 1 (zeros for an empty score)."""
    notes = _note_table(score)
    if notes["pitch"].size == 0:
        return np.zeros(12, dtype=np.float32)
    hist = np.bincount(notes["pitch"].astype(np.int64) % 12,
                       weights=np.maximum(notes["end"] - notes["time"], 1.0), minlength=12)
    return (hist / hist.max()).astype(np.float32)


def roll_chroma(velocity: np.ndarray, duration: np.ndarray, pitch_low: int = 21) -> np.ndarray:
    """(12,) pitch-class profile of a roll (same scaling as `piece_chroma`)."""
    weights = (duration.astype(np.float64) * (velocity > 0)).sum(0)  # (P,)
    hist = np.bincount((np.arange(weights.size) + pitch_low) % 12, weights=weights, minlength=12)
    return (hist / hist.max()).astype(np.float32) if hist.max() > 0 else np.zeros(12, np.float32)


def window_starts(roll: Roll, window_steps: int, hop_steps: int, bar_steps: int) -> list[int]:
    """Window starts on bar lines from the first downbeat; a song shorter than one window
    gives one (zero-padded) window."""
    first = roll.first_downbeat % bar_steps if roll.first_downbeat >= bar_steps else roll.first_downbeat
    last_start = roll.n_steps - window_steps
    if last_start < first:
        return [first if first < roll.n_steps else 0]
    return list(range(first, last_start + 1, hop_steps))


def cut_window(roll: Roll, start: int, window_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(window_steps, P) velocity and duration from `start`, zero-padded past the end."""
    vel = np.zeros((window_steps, roll.velocity.shape[1]), dtype=np.uint8)
    dur = np.zeros_like(vel)
    piece = roll.velocity[start:start + window_steps]
    vel[:len(piece)] = piece
    dur[:len(piece)] = roll.duration[start:start + window_steps]
    return vel, dur
