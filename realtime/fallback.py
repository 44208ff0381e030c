"""Fallback phrases: what plays at once when the model has not decided the present (queue underrun).

A phrase is built from the chord the musician holds, in the role's register, on the beat grid,
so the band never hears dead air from the runtime itself while the model catches up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PATTERNS = {  # indices into the ascending chord tones of the phrase's register
    "arp_up": [0, 1, 2, 3],
    "arp_updown": [0, 1, 2, 3, 2, 1],
    "broken": [0, 2, 1, 3],
    "guide": [1, 3],
}


@dataclass(frozen=True)
class PhraseNote:
    beat: float
    duration: float
    pitch: int
    velocity: int


class FallbackPhrases:
    def __init__(
        self,
        patterns: list[str] | None = None,
        step_beats: float = 0.5,
        min_beats: float = 2.0,
        min_pitch: int = 60,
        max_pitch: int = 84,
        velocity: int = 72,
        legato: float = 0.9,
    ):
        unknown = set(patterns or []) - set(PATTERNS)
        if unknown:
            raise ValueError(
                f"fallback.patterns: unknown {sorted(unknown)}; choose from {sorted(PATTERNS)}"
            )
        self.patterns = list(patterns or ["arp_up", "broken", "arp_updown"])
        self.step_beats, self.min_beats = step_beats, min_beats
        self.min_pitch, self.max_pitch = min_pitch, max_pitch
        self.velocity, self.legato = velocity, legato
        self.count = 0

    def tones(self, chord_pitches: tuple[int, ...] | list[int]) -> list[int]:
        """Chord tones (pitch classes of the held notes) inside the register, ascending."""
        pcs = {p % 12 for p in chord_pitches} or {0}
        out = [p for p in range(self.min_pitch, self.max_pitch + 1) if p % 12 in pcs]
        return out or [self.min_pitch]

    def phrase(
        self, chord_pitches, start_beat: float, beats_per_bar: int = 4
    ) -> tuple[list[PhraseNote], float]:
        """Notes from `start_beat` (the first sounds at once) then on the grid, up to at least
        `min_beats` later, ending on a beat; returns (notes, end beat). Patterns rotate, so
        repeated underruns vary."""
        pattern = PATTERNS[self.patterns[self.count % len(self.patterns)]]
        self.count += 1
        tones = self.tones(chord_pitches)
        grid = math.floor(start_beat / self.step_beats + 1e-9) * self.step_beats + self.step_beats
        if grid - start_beat < self.step_beats / 2:  # no sliver of a first note
            grid += self.step_beats
        end = float(math.ceil(start_beat + self.min_beats))
        onsets = [start_beat] + [
            grid + k * self.step_beats for k in range(round((end - grid) / self.step_beats))
        ]
        notes = []
        for i, (beat, nxt) in enumerate(zip(onsets, onsets[1:] + [end])):
            pitch = tones[pattern[i % len(pattern)] % len(tones)]
            notes.append(
                PhraseNote(beat, max(nxt - beat, 1e-3) * self.legato, pitch, self.velocity)
            )
        return notes, end
