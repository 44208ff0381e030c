"""The musical clock: wall time (time.monotonic seconds) <-> beats, with tempo changes and MIDI clock in.

Beats are absolute from the clock's anchor (beat 0 = bar 0, position 0). A tempo change keeps
the music continuous: the beat at the moment of the change stays where it is, only the slope
after it changes. All processes share CLOCK_MONOTONIC, so a clock's `state()` sent to another
process maps beats to the same wall times there.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockState:
    """Enough to rebuild the mapping in another process."""

    anchor_time: float  # wall seconds at which the clock read anchor_beat
    anchor_beat: float
    bpm: float
    beats_per_bar: int


class MusicalClock:
    def __init__(
        self,
        bpm: float = 120.0,
        beats_per_bar: int = 4,
        anchor_time: float | None = None,
        anchor_beat: float = 0.0,
    ):
        if bpm <= 0:
            raise ValueError(f"clock.bpm must be > 0, got {bpm}")
        self.bpm, self.beats_per_bar = float(bpm), int(beats_per_bar)
        self.anchor_time = time.monotonic() if anchor_time is None else float(anchor_time)
        self.anchor_beat = float(anchor_beat)
        self.version = 0  # bumps on every change: holders of wall times recompute them

    @classmethod
    def from_state(cls, state: ClockState) -> MusicalClock:
        return cls(state.bpm, state.beats_per_bar, state.anchor_time, state.anchor_beat)

    def state(self) -> ClockState:
        return ClockState(self.anchor_time, self.anchor_beat, self.bpm, self.beats_per_bar)

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm

    def beat_at(self, wall: float) -> float:
        return self.anchor_beat + (wall - self.anchor_time) * self.bpm / 60.0

    def time_at(self, beat: float) -> float:
        return self.anchor_time + (beat - self.anchor_beat) * 60.0 / self.bpm

    def now_beat(self) -> float:
        return self.beat_at(time.monotonic())

    def bar_beat_tick(self, beat: float, ticks_per_beat: int = 480) -> tuple[int, int, int]:
        """(bar, beat in bar, tick in beat) of an absolute beat."""
        bar = math.floor(beat / self.beats_per_bar)
        in_bar = beat - bar * self.beats_per_bar
        whole = math.floor(in_bar)
        return bar, whole, int((in_bar - whole) * ticks_per_beat)

    def quantize(self, beat: float, grid: float) -> float:
        """Nearest multiple of `grid` beats."""
        return round(beat / grid) * grid

    def set_tempo(self, bpm: float, at: float | None = None) -> None:
        """Change tempo at wall time `at` (now by default) without a jump in beats."""
        if bpm <= 0:
            raise ValueError(f"tempo must be > 0, got {bpm}")
        at = time.monotonic() if at is None else at
        self.anchor_beat, self.anchor_time, self.bpm = self.beat_at(at), at, float(bpm)
        self.version += 1

    def set(self, bpm: float, beat: float, at: float) -> None:
        """Tempo and phase at once: wall time `at` is `beat`, the slope after it is `bpm`."""
        if bpm <= 0:
            raise ValueError(f"tempo must be > 0, got {bpm}")
        self.bpm, self.anchor_beat, self.anchor_time = float(bpm), float(beat), float(at)
        self.version += 1

    def reanchor(self, beat: float, at: float) -> None:
        """Declare that wall time `at` is `beat` (phase correction, MIDI start, first chord)."""
        self.anchor_beat, self.anchor_time = float(beat), float(at)
        self.version += 1


class MidiClockFollower:
    """Follows MIDI clock (24 ticks per quarter note) plus start / continue / stop.

    A least-squares line through the last `window` (tick index, arrival time) pairs gives tempo
    (its slope) and phase (where it puts the latest tick), so one late tick moves the estimate
    by a fraction of its lateness instead of snapping the clock to it. The clock is changed only
    when the fit differs by more than `tempo_tolerance` (relative) or `phase_tolerance_beats`,
    so a steady external clock does not re-time the schedule every tick.
    """

    TICKS_PER_BEAT = 24
    LOSS_TOLERANCE = 0.15  # of an interval, for a gap to count as lost ticks and for confirmation
    LOSS_CONFIRMATIONS = 2  # ticks at the old pace after the gap that confirm a loss

    def __init__(
        self,
        clock: MusicalClock,
        window: int = 48,
        tempo_tolerance: float = 0.003,
        phase_tolerance_beats: float = 0.005,
        min_bpm: float = 20.0,
        max_bpm: float = 400.0,
    ):
        self.clock, self.window = clock, window
        self.tempo_tolerance, self.phase_tolerance = tempo_tolerance, phase_tolerance_beats
        self.min_bpm, self.max_bpm = min_bpm, max_bpm
        self.ticks: deque[tuple[int, float]] = deque(maxlen=window)  # (tick index, arrival)
        self.ticks_since_start: int | None = None  # None until a start (or first tick) is seen
        self.running = False
        self.ticks_seen = 0
        self.ticks_lost = 0
        # (first index after the gap, ticks missed, interval, confirmations to go) while unconfirmed
        self.suspected: tuple[int, int, float, int] | None = None
        self.trace: list[tuple[float, int, int]] | None = (
            None  # (arrival, index, lost so far) if on
        )

    def start(self, at: float) -> None:
        """MIDI Start (0xFA): the next tick is beat 0 of bar 0."""
        self.ticks_since_start, self.running = 0, True
        self.ticks.clear()
        self.clock.reanchor(0.0, at)

    def stop(self) -> None:
        self.running = False

    def resume(self) -> None:
        self.running = True

    def tick(self, at: float) -> None:
        self.ticks_seen += 1
        if self.ticks_since_start is None:  # clock without a start: follow tempo, keep our phase
            self.ticks_since_start = round(self.clock.beat_at(at) * self.TICKS_PER_BEAT)
            self.running = True
        if not self.running:
            return
        index = self._resolve_suspected_loss(at)
        index += self._suspect_loss(at, index)
        self.ticks_since_start = index + 1
        if self.ticks and index - self.ticks[-1][0] > 5:
            self.ticks.clear()  # a jump (continue after stop): start a new fit
        self.ticks.append((index, at))
        if self.trace is not None:
            self.trace.append((at, index, self.ticks_lost))
        if self.suspected is not None:
            return  # decide over the next ticks whether ticks were lost; keep the clock as it is
        if len(self.ticks) < 3:
            if (
                len(self.ticks) == 1
                and abs(self.clock.beat_at(at) - index / 24) > self.phase_tolerance
            ):
                self.clock.reanchor(index / self.TICKS_PER_BEAT, at)
            return
        n = len(self.ticks)
        mean_i = sum(i for i, _ in self.ticks) / n
        mean_t = sum(t for _, t in self.ticks) / n
        var = sum((i - mean_i) ** 2 for i, _ in self.ticks)
        slope = sum((i - mean_i) * (t - mean_t) for i, t in self.ticks) / var  # seconds per tick
        if slope <= 0:
            return
        bpm = 60.0 / (slope * self.TICKS_PER_BEAT)
        fitted = mean_t + slope * (index - mean_i)  # where the line puts this tick
        beat = index / self.TICKS_PER_BEAT
        tempo_off = abs(bpm - self.clock.bpm) > self.tempo_tolerance * self.clock.bpm
        phase_off = abs(self.clock.beat_at(fitted) - beat) > self.phase_tolerance
        if self.min_bpm <= bpm <= self.max_bpm and (tempo_off or phase_off):
            self.clock.set(bpm if tempo_off else self.clock.bpm, beat, fitted)

    def _interval(self) -> float:
        (i0, t0), (i1, t1) = self.ticks[0], self.ticks[-1]
        return (t1 - t0) / (i1 - i0)

    def _suspect_loss(self, at: float, index: int) -> int:
        """A gap of ~k intervals looks like k-1 ticks lost on the way (a JACK xrun): count them
        for now; the next ticks tell a loss (the old pace goes on) from a tempo change or a
        delayed burst."""
        if len(self.ticks) < 3 or self.suspected is not None:
            return 0
        interval = self._interval()
        ratio = (at - self.ticks[-1][1]) / interval if interval > 0 else 0.0
        k = round(ratio)
        if 2 <= k <= 5 and abs(ratio - k) < self.LOSS_TOLERANCE:
            self.suspected = (index + k - 1, k - 1, interval, self.LOSS_CONFIRMATIONS)
            self.ticks_lost += k - 1
            return k - 1
        return 0

    def _resolve_suspected_loss(self, at: float) -> int:
        """The index of this tick, after confirming or taking back a suspected loss."""
        if self.suspected is None:
            return self.ticks_since_start
        after_gap, missed, interval, needed = self.suspected
        if abs((at - self.ticks[-1][1]) / interval - 1) < self.LOSS_TOLERANCE:
            self.suspected = None if needed <= 1 else (after_gap, missed, interval, needed - 1)
            return self.ticks_since_start  # the old pace goes on: ticks were lost
        self.suspected = (
            None  # another pace (tempo change) or a burst (delayed ticks): take it back
        )
        self.ticks_lost -= missed
        self.ticks = deque(
            ((i - missed if i >= after_gap else i, t) for i, t in self.ticks), maxlen=self.window
        )
        return self.ticks_since_start - missed
