"""Score -> note arrays, bar/beat grids and seconds: the one view every metric reads.

Ticks come from the Score (its tpq); bars from its time signatures (4/4 when it has none);
seconds from its tempo map via symusic's own tick->second conversion.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import symusic

from datamodules.chords import Chord


@dataclass(frozen=True)
class NoteArrays:
    """Notes sorted by (onset, pitch); times in ticks and in seconds."""

    onset: np.ndarray  # int64 ticks
    offset: np.ndarray  # int64 ticks (onset + duration)
    pitch: np.ndarray  # int64
    velocity: np.ndarray  # int64
    onset_s: np.ndarray  # float64 seconds
    offset_s: np.ndarray  # float64 seconds
    track: np.ndarray  # index of the source track in score.tracks
    is_drum: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.onset.size)

    def select(self, mask: np.ndarray) -> NoteArrays:
        return NoteArrays(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})


def note_arrays(score: symusic.Score, include_drums: bool = False) -> NoteArrays:
    """All notes of the score (drum tracks only when asked) as sorted arrays."""
    seconds = score.to("second")
    columns: dict[str, list[np.ndarray]] = {name: [] for name in NoteArrays.__dataclass_fields__}
    for index, (track, track_s) in enumerate(zip(score.tracks, seconds.tracks)):
        if track.is_drum and not include_drums or len(track.notes) == 0:
            continue
        ticks, secs = track.notes.numpy(), track_s.notes.numpy()
        onset = ticks["time"].astype(np.int64)
        columns["onset"].append(onset)
        columns["offset"].append(onset + ticks["duration"].astype(np.int64))
        columns["pitch"].append(ticks["pitch"].astype(np.int64))
        columns["velocity"].append(ticks["velocity"].astype(np.int64))
        columns["onset_s"].append(secs["time"].astype(np.float64))
        columns["offset_s"].append((secs["time"] + secs["duration"]).astype(np.float64))
        columns["track"].append(np.full(onset.size, index, dtype=np.int64))
        columns["is_drum"].append(np.full(onset.size, track.is_drum, dtype=bool))
    if not columns["onset"]:
        empty = {name: np.zeros(0, dtype=np.float64 if name.endswith("_s") else np.int64)
                 for name in NoteArrays.__dataclass_fields__}
        empty["is_drum"] = np.zeros(0, dtype=bool)
        return NoteArrays(**empty)
    joined = {name: np.concatenate(parts) for name, parts in columns.items()}
    order = np.lexsort((joined["pitch"], joined["onset"]))
    return NoteArrays(**{name: values[order] for name, values in joined.items()})


def bar_lines(score: symusic.Score, end_tick: int) -> np.ndarray:
    """Bar start ticks covering [0, end_tick], plus a closing line after end_tick.

    A time-signature change mid-bar starts a new bar there (what notation software does).
    """
    tpq = score.tpq
    signatures = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    lines: list[int] = []
    for index, (start, numerator, denominator) in enumerate(signatures):
        stop = signatures[index + 1][0] if index + 1 < len(signatures) else None
        if stop is not None and stop <= start:
            continue
        bar_length = max(1, round(numerator * tpq * 4 / denominator))
        limit = stop if stop is not None else max(end_tick + 1, start + 1)
        lines.extend(range(start, limit, bar_length))
        if stop is None:
            last = lines[-1] if lines else start
            lines.append(last + bar_length)
    return np.asarray(sorted(set(lines)), dtype=np.int64)


def beat_lines(score: symusic.Score, end_tick: int) -> np.ndarray:
    """Beat start ticks (the time signature's denominator unit) up to a closing line."""
    tpq = score.tpq
    signatures = sorted((ts.time, ts.denominator) for ts in score.time_signatures)
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, 4))
    lines: list[int] = []
    for index, (start, denominator) in enumerate(signatures):
        stop = signatures[index + 1][0] if index + 1 < len(signatures) else None
        step = max(1, round(tpq * 4 / denominator))
        limit = stop if stop is not None else max(end_tick + 1, start + 1)
        lines.extend(range(start, limit, step))
        if stop is None:
            lines.append((lines[-1] if lines else start) + step)
    return np.asarray(sorted(set(lines)), dtype=np.int64)


@dataclass(frozen=True)
class ChordSpan:
    """An annotated chord over [start_s, end_s) in seconds; chord None means no chord."""

    start_s: float
    end_s: float
    chord: Chord | None


class Piece:
    """A Score plus lazily computed, cached views shared by all metrics of one file."""

    def __init__(self, score: symusic.Score, chords: Sequence[ChordSpan] | None = None,
                 name: str = ""):
        self.score = score
        self.annotated_chords = list(chords) if chords is not None else None
        self.name = name
        self.cache: dict[str, object] = {}  # metric families park expensive results here

    @property
    def tpq(self) -> int:
        return self.score.tpq

    @cached_property
    def notes(self) -> NoteArrays:
        """Pitched notes (drum tracks excluded)."""
        return note_arrays(self.score, include_drums=False)

    @cached_property
    def all_notes(self) -> NoteArrays:
        return note_arrays(self.score, include_drums=True)

    @cached_property
    def end_tick(self) -> int:
        notes = self.all_notes
        return int(notes.offset.max()) if len(notes) else 0

    @cached_property
    def bars(self) -> np.ndarray:
        """Bar lines: bar i spans [bars[i], bars[i+1])."""
        return bar_lines(self.score, max(self.end_tick, 1))

    @cached_property
    def beats(self) -> np.ndarray:
        return beat_lines(self.score, max(self.end_tick, 1))

    def bar_index(self, ticks: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.bars, ticks, side="right") - 1

    def bar_position(self, ticks: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """(bar index, position in 0..resolution-1) of each tick on a per-bar grid."""
        bar = self.bar_index(ticks)
        start, stop = self.bars[bar], self.bars[bar + 1]
        position = ((ticks - start) * resolution) // (stop - start)
        return bar, np.clip(position, 0, resolution - 1)

    @cached_property
    def chords(self) -> list[ChordSpan]:
        """Annotated chords when given, else the template recogniser's, one span per beat."""
        if self.annotated_chords is not None:
            return self.annotated_chords
        from metrics.chord_recognition import recognise_chords

        return recognise_chords(self)

    @cached_property
    def chord_source(self) -> str:
        return "annotation" if self.annotated_chords is not None else "recogniser"

    def seconds_of_ticks(self, ticks: np.ndarray) -> np.ndarray:
        """Tick -> seconds through the tempo map (piecewise linear between tempo changes)."""
        tempos = sorted((t.time, t.mspq) for t in self.score.tempos) or [(0, 500000)]
        if tempos[0][0] > 0:
            tempos.insert(0, (0, 500000))
        starts = np.array([t for t, _ in tempos], dtype=np.float64)
        sec_per_tick = np.array([m for _, m in tempos], dtype=np.float64) / 1e6 / self.tpq
        start_seconds = np.concatenate([[0.0], np.cumsum(np.diff(starts) * sec_per_tick[:-1])])
        ticks = np.asarray(ticks, dtype=np.float64)
        segment = np.clip(np.searchsorted(starts, ticks, side="right") - 1, 0, len(starts) - 1)
        return start_seconds[segment] + (ticks - starts[segment]) * sec_per_tick[segment]
