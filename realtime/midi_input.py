"""What the musician plays, turned into events: chords from held notes, triggers and gestures.

Raw bytes from a port go through ByteParser (running status, realtime bytes interleaved
anywhere, sysex, truncated messages and stray data bytes are handled; mido's own Parser drops
running-status messages); everything that is not a note, a configured controller or clock is
counted and ignored, so a sysex dump or a stray byte never reaches the model.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import mido

from datamodules.chords import CHORD_QUALITIES, Chord
from realtime.clock import MidiClockFollower

log = logging.getLogger(__name__)

# qualities a held voicing is matched against (three- and four-note chords; tensions fold in)
DETECTABLE_QUALITIES = (
    "maj",
    "min",
    "dim",
    "aug",
    "sus2",
    "sus4",
    "5",
    "6",
    "min6",
    "7",
    "maj7",
    "min7",
    "minmaj7",
    "dim7",
    "hdim7",
    "7sus4",
)


def detect_chord(pitches: list[int] | set[int]) -> Chord | None:
    """Best (root, quality) for a set of MIDI pitches, or None for fewer than 2 pitch classes.

    Score = matched chord tones - 1.5 * held pitch classes outside the chord - 0.5 * chord tones
    missing; ties prefer the lowest note as root, then simpler chords (fewer tones).
    """
    pcs = {p % 12 for p in pitches}
    if len(pcs) < 2:
        return None
    bass = min(pitches) % 12
    best, best_key = None, None
    for root in range(12):
        for quality in DETECTABLE_QUALITIES:
            tones = {(root + i) % 12 for i in CHORD_QUALITIES[quality]}
            if root not in pcs:
                continue
            score = len(pcs & tones) - 1.5 * len(pcs - tones) - 0.5 * len(tones - pcs)
            key = (score, root == bass, -len(tones))
            if best_key is None or key > best_key:
                best, best_key = Chord(root, quality, None if root == bass else bass), key
    return best


_DATA_LENGTH = {
    0x80: 2,
    0x90: 2,
    0xA0: 2,
    0xB0: 2,
    0xC0: 1,
    0xD0: 1,
    0xE0: 2,
    0xF1: 1,
    0xF2: 2,
    0xF3: 1,
}
_REALTIME = {0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF}


class ByteParser:
    """A MIDI byte stream -> mido Messages, keeping state across chunks (a port's events)."""

    def __init__(self):
        self.status: int | None = None  # running status
        self.data: list[int] = []
        self.sysex: list[int] | None = None
        self.stray = 0  # data bytes with no status to belong to

    def feed(self, chunk) -> list[mido.Message]:
        out = []
        for b in chunk:
            b = int(b)
            if not 0 <= b <= 255:
                raise ValueError(f"invalid byte value {b}")
            if b >= 0xF8:  # realtime: may sit inside any message, never touches running status
                if b in _REALTIME:
                    out.append(mido.Message.from_bytes([b]))
                continue
            if self.sysex is not None:
                if b < 0x80:
                    self.sysex.append(b)
                    continue
                if b == 0xF7:
                    out.append(mido.Message.from_bytes(self.sysex + [b]))
                    self.sysex = None
                    continue
                self.sysex = None  # an unterminated sysex ends at the next status byte
            if b == 0xF0:
                self.sysex, self.status = [b], None
            elif b >= 0x80:
                self.status, self.data = (b if b in _DATA_LENGTH or b < 0xF0 else None), []
                if b == 0xF6:
                    out.append(mido.Message("tune_request"))
            elif self.status is None:
                self.stray += 1
            else:
                self.data.append(b)
                if (
                    len(self.data)
                    == _DATA_LENGTH[self.status if self.status >= 0xF0 else self.status & 0xF0]
                ):
                    out.append(mido.Message.from_bytes([self.status] + self.data))
                    self.data = []
                    if self.status >= 0xF0:  # system common cancels running status
                        self.status = None
        return out


@dataclass
class ChordEvent:
    time: float  # wall time of the first note-on of this chord
    detected_at: float  # wall time the chord was committed (after the settle window)
    chord: Chord
    pitches: tuple[int, ...]
    velocity: int  # mean velocity of the chord's note-ons
    restrike: bool = False  # same chord struck again


@dataclass
class TriggerEvent:
    time: float
    source: str


@dataclass
class GestureEvent:
    time: float
    name: str  # "temperature"
    value: float


@dataclass
class InputStats:
    messages: int = 0
    ignored: Counter = field(default_factory=Counter)  # message type -> count
    parse_errors: int = 0


class InputHandler:
    """Feed it parsed messages with their arrival time; poll `due(now)` for chord events.

    A chord is committed `settle_s` after the first note-on of a new onset, so notes of one
    block chord (which arrive within one JACK period) form one event. A later change of the held
    set that changes the detected chord re-fires; so does re-striking the same chord after all
    notes were released (`reprompt_on_restrike`).
    """

    def __init__(
        self,
        settle_ms: float = 1.0,
        min_notes: int = 2,
        reprompt_on_restrike: bool = True,
        channel: int | None = None,
        trigger_cc: int | None = 80,
        temperature_cc: int | None = 1,
        temperature_range: tuple[float, float] = (0.6, 1.4),
        clock_follower: MidiClockFollower | None = None,
    ):
        self.settle_s, self.min_notes = settle_ms / 1000.0, min_notes
        self.reprompt_on_restrike, self.channel = reprompt_on_restrike, channel
        self.trigger_cc, self.temperature_cc = trigger_cc, temperature_cc
        self.temperature_range = tuple(temperature_range)
        self.clock_follower = clock_follower
        self.held: dict[int, int] = {}  # pitch -> velocity
        self.onset_time: float | None = None  # first note-on of the pending onset
        self.onset_velocities: list[int] = []
        self.current: Chord | None = None
        self.released_since_chord = False
        self.events: list = []
        self.stats = InputStats()
        self.parser = ByteParser()

    def feed_bytes(self, data: list[int] | bytes, at: float) -> None:
        """Raw bytes from a port (one or more messages, possibly with running status)."""
        try:
            messages = self.parser.feed(data)
        except (ValueError, TypeError) as err:  # a byte outside 0..255 and the like
            self.stats.parse_errors += 1
            log.debug("unparseable MIDI bytes %r: %s", data, err)
            self.parser = ByteParser()
            return
        for msg in messages:
            self.feed(msg, at)
        if self.parser.stray:
            self.stats.ignored["stray_data_bytes"] += self.parser.stray
            self.parser.stray = 0

    def feed(self, msg: mido.Message, at: float) -> None:
        self.stats.messages += 1
        kind = msg.type
        if kind in ("note_on", "note_off") and (
            self.channel is None or msg.channel == self.channel
        ):
            if kind == "note_on" and msg.velocity > 0:
                self._note_on(msg.note, msg.velocity, at)
            else:
                self._note_off(msg.note)
        elif kind == "control_change" and (self.channel is None or msg.channel == self.channel):
            self._control(msg.control, msg.value, at)
        elif kind == "clock" and self.clock_follower is not None:
            self.clock_follower.tick(at)
        elif kind == "start" and self.clock_follower is not None:
            self.clock_follower.start(at)
        elif kind == "stop" and self.clock_follower is not None:
            self.clock_follower.stop()
        elif kind == "continue" and self.clock_follower is not None:
            self.clock_follower.resume()
        else:
            self.stats.ignored[kind] += 1

    def _note_on(self, pitch: int, velocity: int, at: float) -> None:
        self.held[pitch] = velocity
        if self.onset_time is None:
            self.onset_time, self.onset_velocities = at, []
        self.onset_velocities.append(velocity)

    def _note_off(self, pitch: int) -> None:
        self.held.pop(pitch, None)
        if not self.held:
            self.released_since_chord = True

    def _control(self, control: int, value: int, at: float) -> None:
        if control == self.trigger_cc and value >= 64:
            self.events.append(TriggerEvent(at, f"cc{control}"))
        elif control == self.temperature_cc:
            low, high = self.temperature_range
            self.events.append(GestureEvent(at, "temperature", low + (high - low) * value / 127))
        elif control in (120, 123):  # all sound / notes off from upstream: nothing is held now
            self.held.clear()
            self.released_since_chord = True
        else:
            self.stats.ignored[f"cc{control}"] += 1

    def next_deadline(self) -> float | None:
        """Wall time at which a pending onset will be committed (the loop sleeps no longer)."""
        return None if self.onset_time is None else self.onset_time + self.settle_s

    def due(self, now: float) -> list:
        """Events ready at `now`: committed chords plus triggers and gestures, in order."""
        if self.onset_time is not None and now >= self.onset_time + self.settle_s:
            self._commit(now)
        events, self.events = self.events, []
        return events

    def _commit(self, now: float) -> None:
        onset, velocities = self.onset_time, self.onset_velocities
        self.onset_time = None
        if len(self.held) < self.min_notes:
            return
        chord = detect_chord(set(self.held))
        if chord is None:
            return
        restrike = chord == self.current and self.released_since_chord
        if chord != self.current or (restrike and self.reprompt_on_restrike):
            velocity = round(sum(velocities) / len(velocities)) if velocities else 80
            self.events.append(
                ChordEvent(onset, now, chord, tuple(sorted(self.held)), velocity, restrike)
            )
            self.current, self.released_since_chord = chord, False
