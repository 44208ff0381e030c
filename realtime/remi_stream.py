"""REMI-family token streams in absolute beats: encode prompt notes, decode generated tokens one by one.

miditok's decode works on whole sequences; a live stream needs each note the moment its tokens
exist. `RemiVocab` reads the tokenizer's vocabulary once (Bar, Position, Pitch, Velocity,
Duration, Tempo, Rest); `RemiDecoder` turns ids into note starts/ends at absolute beats.
Bars are 4/4 here, as in the platform's REMI config (no time-signature tokens).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np


def _duration_beats(value: str) -> float:
    """miditok duration/rest value 'beats.ticks.resolution' -> beats."""
    beats, ticks, res = (int(x) for x in value.split("."))
    return beats + ticks / res


class RemiVocab:
    def __init__(self, tokenizer, beats_per_bar: int = 4):
        vocab: dict[str, int] = dict(tokenizer.vocab)
        kinds = {tok.split("_", 1)[0] for tok in vocab}
        missing = {"Bar", "Position", "Pitch", "Velocity", "Duration"} - kinds
        if missing:
            raise ValueError(
                f"the realtime stream decoder needs a REMI-family tokenizer (Bar/Position/Pitch/"
                f"Velocity/Duration tokens); this one ({type(tokenizer).__name__}) lacks "
                f"{sorted(missing)}. Train with data.tokenizer.kind=REMI, or give the family "
                "its own realtime prompt builder"
            )
        self.size = len(vocab)
        self.beats_per_bar = beats_per_bar
        self.kind = np.full(self.size, "", dtype=object)
        self.value = np.zeros(self.size, dtype=np.float64)
        self.bar_id = vocab["Bar_None"]
        self.position_ids, self.pitch_ids, self.velocity_ids = {}, {}, {}
        self.duration_ids: dict[float, int] = {}
        self.tempo_ids: dict[float, int] = {}
        self.positions_per_beat = int(max(tokenizer.config.beat_res.values()))
        for tok, i in vocab.items():
            kind, _, value = tok.partition("_")
            self.kind[i] = kind
            if kind == "Position":
                self.position_ids[int(value)] = i
                self.value[i] = int(value) / self.positions_per_beat
            elif kind == "Pitch":
                self.pitch_ids[int(value)] = i
                self.value[i] = int(value)
            elif kind == "Velocity":
                self.velocity_ids[int(value)] = i
                self.value[i] = int(value)
            elif kind in ("Duration", "Rest"):
                self.value[i] = _duration_beats(value)
                if kind == "Duration":
                    self.duration_ids[self.value[i]] = i
            elif kind == "Tempo":
                self.tempo_ids[float(value)] = i
                self.value[i] = float(value)
        self.special_ids = [
            vocab[t] for t in ("PAD_None", "BOS_None", "EOS_None", "MASK_None") if t in vocab
        ]
        self.bos_id = vocab.get("BOS_None")
        self._sorted = {
            name: sorted(ids)
            for name, ids in (
                ("velocity", self.velocity_ids),
                ("duration", self.duration_ids),
                ("tempo", self.tempo_ids),
            )
        }

    def ids_of_kind(self, *kinds: str) -> list[int]:
        return [i for i in range(self.size) if self.kind[i] in kinds]

    def _nearest(self, table: str, value: float) -> int:
        keys = self._sorted[table]
        j = min(bisect_left(keys, value), len(keys) - 1)
        if j > 0 and abs(keys[j - 1] - value) <= abs(keys[j] - value):
            j -= 1
        return {
            "velocity": self.velocity_ids,
            "duration": self.duration_ids,
            "tempo": self.tempo_ids,
        }[table][keys[j]]

    def velocity_token(self, velocity: int) -> int:
        return self._nearest("velocity", velocity)

    def duration_token(self, beats: float) -> int:
        return self._nearest("duration", beats)

    def tempo_token(self, bpm: float) -> int | None:
        return self._nearest("tempo", bpm) if self.tempo_ids else None

    def position_token(self, beat_in_bar: float) -> int:
        slot = round(beat_in_bar * self.positions_per_beat)
        return self.position_ids[min(slot, max(self.position_ids))]


@dataclass
class NoteStart:
    note_id: int
    pitch: int
    velocity: int
    beat: float


@dataclass
class NoteEnd:
    note_id: int
    beat: float


class RemiDecoder:
    """Incremental: `feed(id)` returns the events that id completes. Tolerant of bad grammar.

    The horizon is the beat up to which the stream has decided what happens: after a Bar or
    Position token nothing can start earlier. A Position that would go back in time is clamped.
    """

    def __init__(self, vocab: RemiVocab):
        self.v = vocab
        self.bar = -1  # index of the current bar (the first Bar token makes it 0)
        self.beat = 0.0  # absolute beat of the current position
        self.pitch: int | None = None
        self.pending: NoteStart | None = None  # started, duration token still to come
        self.notes_here = 0  # notes started at the current position (polyphony control)
        self.next_note_id = 0

    @property
    def horizon(self) -> float:
        return self.beat

    def seek(self, bar: int, beat: float) -> None:
        """Place the decoder (used after a prompt whose time is already known)."""
        self.bar, self.beat, self.pitch, self.pending, self.notes_here = bar, beat, None, None, 0

    def feed(self, token: int) -> list:
        kind, value = self.v.kind[token], self.v.value[token]
        if kind == "Bar":
            self.bar += 1
            self._move(max(self.beat, self.bar * self.v.beats_per_bar))
        elif kind == "Position":
            self._move(max(self.beat, max(self.bar, 0) * self.v.beats_per_bar + value))
        elif kind == "Rest":
            self._move(self.beat + value)
            self.bar = int(self.beat // self.v.beats_per_bar)
        elif kind == "Pitch":
            self.pitch = int(value)
        elif kind == "Velocity" and self.pitch is not None:
            self.pending = NoteStart(self.next_note_id, self.pitch, int(value), self.beat)
            self.next_note_id += 1
            self.pitch = None
            self.notes_here += 1
            return [self.pending]
        elif kind == "Duration" and self.pending is not None:
            end = NoteEnd(self.pending.note_id, self.pending.beat + value)
            self.pending = None
            return [end]
        return []

    def _move(self, beat: float) -> None:
        if beat != self.beat:
            self.notes_here = 0
        # a note whose Duration never came stays pending no more: the scheduler's provisional
        # note-off closes it
        self.beat, self.pitch, self.pending = beat, None, None
