"""Recent input + role -> conditioning tokens that continue the worker's context at the chord onset.

The builder writes, from the context's current time to the chord's onset beat: Bar tokens for
every bar line crossed, the onset Position, a Tempo token when the tempo moved, then the chord's
notes (Pitch, Velocity, Duration) as played. The role (solo / bass / comp) sets the register and
polyphony the generated line is held to; the worker applies those as sampling constraints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from realtime.remi_stream import RemiVocab


@dataclass(frozen=True)
class PromptRequest:
    """What the runtime asks of the worker when the musician changes chord (or a trigger fires)."""

    ctx: int  # context id: every note generated from this prompt carries it
    beat: float  # onset, absolute beats on the shared clock (already quantised to the grid)
    pitches: tuple[int, ...]  # notes held at the onset
    velocity: int
    chord: str  # detected label, e.g. "A:min7" (for logs and families that condition on labels)
    bpm: float
    sent_at: float = 0.0  # wall time the runtime sent the request


@dataclass
class Role:
    """Register and texture of the generated part."""

    name: str = "solo"
    min_pitch: int = 60
    max_pitch: int = 96
    max_notes_per_position: int = 1  # 1 = monophonic line
    max_duration_beats: float = 4.0


class RemiPromptBuilder:
    restarts_context = False  # continue one running context (see RoleConditionedPromptBuilder)

    def __init__(
        self,
        vocab: RemiVocab,
        role: Role | dict | None = None,
        chord_duration_beats: float = 4.0,
        include_tempo: bool = True,
        tempo_change_ratio: float = 0.03,
        chord_octave_shift: int = 0,
        tokenizer=None,
    ):
        self.v = vocab
        self.role = role if isinstance(role, Role) else Role(**(role or {}))
        self.chord_duration_beats = chord_duration_beats
        self.include_tempo, self.tempo_change_ratio = include_tempo, tempo_change_ratio
        self.chord_octave_shift = chord_octave_shift
        self.context_bpm: float | None = None  # tempo last written into the context

    def reset(self) -> None:
        self.context_bpm = None

    def start_tokens(self) -> list[int]:
        """Opening of a fresh context (what training windows start with)."""
        return [self.v.bos_id] if self.v.bos_id is not None else []

    def tokens(self, request: PromptRequest, cursor_bar: int, cursor_beat: float) -> list[int]:
        """Tokens taking a context whose decoder sits at (cursor_bar, cursor_beat) to the chord."""
        bpb = self.v.beats_per_bar
        onset_bar = math.floor(request.beat / bpb + 1e-9)
        out: list[int] = [self.v.bar_id] * max(0, onset_bar - cursor_bar)
        if out or request.beat > cursor_beat + 1e-9:  # else: the context already sits at the onset
            out.append(self.v.position_token(request.beat - onset_bar * bpb))
        if self.include_tempo and (
            self.context_bpm is None
            or abs(request.bpm - self.context_bpm) > self.tempo_change_ratio * self.context_bpm
        ):
            tempo = self.v.tempo_token(request.bpm)
            if tempo is not None:
                out.append(tempo)
                self.context_bpm = request.bpm
        velocity = self.v.velocity_token(request.velocity)
        duration = self.v.duration_token(self.chord_duration_beats)
        for pitch in sorted(request.pitches):
            shifted = pitch + self.chord_octave_shift
            if shifted in self.v.pitch_ids:
                out += [self.v.pitch_ids[shifted], velocity, duration]
        return out

    def advance_tokens(self, cursor_bar: int, cursor_beat: float, beat: float) -> list[int]:
        """Tokens that move the context forward to `beat` without notes (resync after a fallback)."""
        if beat <= cursor_beat + 1e-9:
            return []
        bpb = self.v.beats_per_bar
        bar = math.floor(beat / bpb + 1e-9)
        return [self.v.bar_id] * max(0, bar - cursor_bar) + [
            self.v.position_token(beat - bar * bpb)
        ]

    def pitch_range_ids(self) -> list[int]:
        return [
            i
            for p, i in self.v.pitch_ids.items()
            if self.role.min_pitch <= p <= self.role.max_pitch
        ]


class RoleConditionedPromptBuilder(RemiPromptBuilder):
    """For families trained on `BOS ROLE_<role> TEMPO_<bucket> <conditioning bars> COND_SEP <part>`
    (datamodules/role_tokens.py, the Music Transformer + LoRA family): every chord restarts the
    context with the held chord as `cond_bars` bars of conditioning, then the part opens at the
    onset (Bar, Position). The worker re-prompts itself with the same chord when the part reaches
    the end of the conditioned bars.
    """

    restarts_context = True

    def __init__(
        self,
        vocab: RemiVocab,
        tokenizer,
        role: Role | dict | None = None,
        role_token: str = "lead",
        cond_bars: int = 2,
        chord_velocity: int = 60,
        **kwargs,
    ):
        from datamodules.role_tokens import control_ids

        super().__init__(vocab, role, **kwargs)
        self.ids = control_ids(
            tokenizer
        )  # raises with the fix when the tokenizer has no control tokens
        self.role_id = self.ids.role(role_token)
        self.cond_bars, self.chord_velocity = cond_bars, chord_velocity

    def conditioning(self, request: PromptRequest) -> list[int]:
        """The chord as REMI bars (what miditok writes for chord_notes_to_score of the same notes)."""
        bpb = self.v.beats_per_bar
        onset_in_bar = request.beat - math.floor(request.beat / bpb + 1e-9) * bpb
        velocity = self.v.velocity_token(self.chord_velocity)
        tempo = self.v.tempo_token(request.bpm)
        out: list[int] = []
        for bar in range(self.cond_bars):
            start = onset_in_bar if bar == 0 else 0.0
            out.append(self.v.bar_id)
            if bar == 0 and tempo is not None:  # miditok writes the score's tempo at the bar start
                out += [self.v.position_token(0.0), tempo] + (
                    [self.v.position_token(start)] if start else []
                )
            else:
                out.append(self.v.position_token(start))
            duration = self.v.duration_token(bpb - start)
            for pitch in sorted(request.pitches):
                if pitch in self.v.pitch_ids:
                    out += [self.v.pitch_ids[pitch], velocity, duration]
        return out

    def restart_tokens(self, request: PromptRequest) -> tuple[list[int], list[int]]:
        """(context prefix, not timed; the part's opening, timed from the onset bar)."""
        prefix = [
            self.ids.bos,
            self.role_id,
            self.ids.tempo(request.bpm),
            *self.conditioning(request),
            self.ids.sep,
        ]
        onset_bar = math.floor(request.beat / self.v.beats_per_bar + 1e-9)
        return prefix, [
            self.v.bar_id,
            self.v.position_token(request.beat - onset_bar * self.v.beats_per_bar),
        ]
