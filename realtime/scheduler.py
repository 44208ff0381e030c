"""Future-timestamped note queue: precise sends, note-offs always paired, cancellation on a new chord.

Notes live in musical time (beats) unless they were told to sound at a fixed wall time (the
first answer to a chord sounds the moment it is generated). Wall times come from the clock and
are recomputed when it changes (tempo change, MIDI clock phase correction). A note-on that is
too late is dropped with its note-off; a note-off is never dropped. Re-striking a sounding pitch
closes the old note first, and `all_notes_off` closes everything that sounds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from realtime.clock import MusicalClock

log = logging.getLogger(__name__)

NOTE_ON, NOTE_OFF, CONTROL = 0x90, 0x80, 0xB0


@dataclass
class ScheduledNote:
    ctx: int
    pitch: int
    velocity: int
    start_beat: float
    end_beat: float | None = None  # None until the model's Duration arrives (provisional end)
    start_wall: float | None = None  # fixed wall time instead of start_beat (immediate answer)
    source: str = "model"  # model | fallback
    first: bool = False  # first note of its context
    uid: int = 0
    cancelled: bool = False
    on_sent: float | None = None
    off_sent: float | None = None
    off_version: int = 0


@dataclass
class SendRecord:
    """One message as it left: scheduled vs actual wall time (jitter = sent - scheduled)."""

    kind: str  # on | off | cc
    pitch: int
    velocity: int
    scheduled: float
    sent: float
    uid: int = -1
    ctx: int = -1
    source: str = ""
    first: bool = False


@dataclass
class SchedulerStats:
    late_dropped: int = 0
    restrikes: int = 0
    cancelled: int = 0
    sent_on: int = 0
    sent_off: int = 0
    log: list[SendRecord] = field(default_factory=list)


class NoteScheduler:
    def __init__(
        self,
        clock: MusicalClock,
        send: Callable[[list[int]], None],
        channel: int = 0,
        default_duration_beats: float = 1.0,
        min_note_ms: float = 15.0,
        late_tolerance_ms: float = 30.0,
        record: bool = True,
    ):
        self.clock, self.send_bytes, self.channel = clock, send, channel
        self.default_duration_beats = default_duration_beats
        self.min_note_s, self.late_tolerance_s = min_note_ms / 1000.0, late_tolerance_ms / 1000.0
        self.record = record
        self.heap: list[tuple[float, int, str, ScheduledNote, int]] = []
        self.sounding: dict[int, ScheduledNote] = {}  # pitch -> note whose note-on went out
        self.pending: list[ScheduledNote] = []  # added, note-on not sent yet
        self._seq = itertools.count()
        self._uids = itertools.count()
        self._clock_version = clock.version
        self.stats = SchedulerStats()

    # ---- timing ---------------------------------------------------------------------------
    def _on_time(self, note: ScheduledNote) -> float:
        return (
            note.start_wall if note.start_wall is not None else self.clock.time_at(note.start_beat)
        )

    def _off_time(self, note: ScheduledNote) -> float:
        end = (
            note.end_beat
            if note.end_beat is not None
            else note.start_beat + self.default_duration_beats
        )
        on = note.on_sent if note.on_sent is not None else self._on_time(note)
        return max(self.clock.time_at(end), on + self.min_note_s)

    def _push(self, kind: str, note: ScheduledNote) -> None:
        when = self._on_time(note) if kind == "on" else self._off_time(note)
        heapq.heappush(self.heap, (when, next(self._seq), kind, note, note.off_version))

    def retime_if_clock_changed(self) -> bool:
        """Recompute every queued wall time after a tempo/phase change."""
        if self.clock.version == self._clock_version:
            return False
        self._clock_version = self.clock.version
        entries, self.heap = self.heap, []
        for _, _, kind, note, version in entries:
            if kind == "on" and not note.cancelled and note.on_sent is None:
                self._push("on", note)
            elif kind == "off" and version == note.off_version and note.off_sent is None:
                self._push("off", note)
        return True

    # ---- queue operations -----------------------------------------------------------------
    def add(self, note: ScheduledNote) -> ScheduledNote:
        note.uid = next(self._uids)
        if len(self.pending) > 256:
            self.pending = [x for x in self.pending if not x.cancelled and x.on_sent is None]
        self.pending.append(note)
        self._push("on", note)
        self._push("off", note)  # provisional until set_end
        return note

    def set_end(self, note: ScheduledNote, end_beat: float) -> None:
        note.end_beat = end_beat
        if note.off_sent is None and not note.cancelled:
            note.off_version += 1
            self._push("off", note)

    def cancel_unsent(self, keep: Callable[[ScheduledNote], bool]) -> int:
        """Cancel queued notes whose note-on has not gone out, unless keep(note)."""
        n = 0
        for note in self.pending:
            if note.on_sent is None and not note.cancelled and not keep(note):
                note.cancelled = True
                n += 1
        self.pending = [x for x in self.pending if not x.cancelled and x.on_sent is None]
        self.stats.cancelled += n
        return n

    def next_due(self) -> float | None:
        while self.heap:
            when, _, kind, note, version = self.heap[0]
            if self._stale(kind, note, version):
                heapq.heappop(self.heap)
                continue
            return when
        return None

    @staticmethod
    def _stale(kind: str, note: ScheduledNote, version: int) -> bool:
        if kind == "on":
            return note.cancelled or note.on_sent is not None
        return (
            version != note.off_version
            or note.off_sent is not None
            or (note.cancelled and note.on_sent is None)
        )

    def run_due(self, now: float | None = None) -> int:
        """Send everything due by now; returns the number of messages sent."""
        sent = 0
        now = time.monotonic() if now is None else now
        while self.heap and self.heap[0][0] <= now:
            when, _, kind, note, version = heapq.heappop(self.heap)
            if self._stale(kind, note, version):
                continue
            if kind == "on":
                sent += self._send_on(note, when)
            elif note.on_sent is not None:  # an off whose on never went out has nothing to close
                sent += self._send_off(note, when)
            now = time.monotonic()
        return sent

    def _send_on(self, note: ScheduledNote, when: float) -> int:
        late = time.monotonic() - when
        if late > self.late_tolerance_s and note.start_wall is None:
            note.cancelled = True
            self.stats.late_dropped += 1
            return 0
        sent = 0
        old = self.sounding.get(note.pitch)
        if old is not None:  # same pitch still sounding: close it first, pairs stay balanced
            self.stats.restrikes += 1
            old.off_version += 1
            sent += self._send_off(old, when)
        self.send_bytes([NOTE_ON | self.channel, note.pitch, note.velocity])
        note.on_sent = time.monotonic()
        self.sounding[note.pitch] = note
        self.stats.sent_on += 1
        self._log("on", note, when, note.on_sent, note.velocity)
        if note.end_beat is not None or note.start_wall is not None:
            note.off_version += 1  # re-derive the off from the actual on time (min length)
            self._push("off", note)
        return sent + 1

    def _send_off(self, note: ScheduledNote, when: float) -> int:
        self.send_bytes([NOTE_OFF | self.channel, note.pitch, 0])
        note.off_sent = time.monotonic()
        if self.sounding.get(note.pitch) is note:
            del self.sounding[note.pitch]
        self.stats.sent_off += 1
        self._log("off", note, when, note.off_sent, 0)
        return 1

    def _log(self, kind: str, note: ScheduledNote, when: float, sent: float, velocity: int) -> None:
        if self.record:
            self.stats.log.append(
                SendRecord(
                    kind,
                    note.pitch,
                    velocity,
                    when,
                    sent,
                    note.uid,
                    note.ctx,
                    note.source,
                    note.first,
                )
            )

    def all_notes_off(self, channels: list[int] | None = None) -> None:
        """Close every sounding note, then CC 123 (all notes off) and CC 64 = 0 per channel."""
        now = time.monotonic()
        for note in list(self.sounding.values()):
            self._send_off(note, now)
        for note in self.pending:
            note.cancelled = True
        self.heap.clear()
        for ch in channels if channels is not None else [self.channel]:
            self.send_bytes([CONTROL | ch, 123, 0])
            self.send_bytes([CONTROL | ch, 64, 0])
        if self.record:
            self.stats.log.append(SendRecord("cc", 123, 0, now, time.monotonic()))
