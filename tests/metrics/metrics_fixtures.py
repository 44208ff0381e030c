"""Tiny hand-built Scores for the metrics tests (a uniquely named module: other test
folders have their own conftest)."""
from __future__ import annotations

import symusic


def build_score(notes, tpq: int = 4, qpm: float = 120.0, time_signature=(4, 4),
                drum_notes=()) -> symusic.Score:
    """notes: (tick, duration, pitch) triples on one piano track; 120 qpm, tpq 4 by default
    (so a 4/4 bar is 16 ticks = 2 s and a tick is 0.125 s)."""
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, qpm))
    score.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    track = symusic.Track("piano", 0, False)
    for time, duration, pitch in notes:
        track.notes.append(symusic.Note(time, duration, pitch, 90))
    score.tracks.append(track)
    if drum_notes:
        drums = symusic.Track("drums", 0, True)
        for time, duration, pitch in drum_notes:
            drums.notes.append(symusic.Note(time, duration, pitch, 90))
        score.tracks.append(drums)
    return score


# Four 4/4 bars at tpq 4, the hand-computed fixture of several tests:
# bar 0: C4 E4 G4 C5 on beats 1-4; bar 1: D4 on beats 1 and 3; bar 2: empty;
# bar 3: C4 D4 E4 F4 on beats 1-4. Every note lasts one beat (4 ticks).
FOUR_BARS = [(0, 4, 60), (4, 4, 64), (8, 4, 67), (12, 4, 72),
             (16, 4, 62), (24, 4, 62),
             (48, 4, 60), (52, 4, 62), (56, 4, 64), (60, 4, 65)]
