"""MIDI files <-> symusic Scores, with every failure turned into a named skip reason."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import symusic

log = logging.getLogger(__name__)

# Skip reasons, stable strings: they land in summaries users grep.
UNREADABLE = "unreadable"  # symusic could not parse the bytes (corrupt, truncated, not MIDI)
EMPTY_FILE = "empty_file"
NO_NOTES = "no_notes"
MISSING = "missing"
TOO_LONG = "too_long"  # absurd length (e.g. a huge delta time), would blow up memory


class MidiSkip(Exception):
    """A MIDI file that the data layer skips, with a reason from the list above."""

    def __init__(self, path: Path | str, reason: str, detail: str = ""):
        self.path, self.reason, self.detail = Path(path), reason, detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


def load_score(path: Path | str, max_seconds: float = 3600.0) -> symusic.Score:
    """Read a MIDI file; raise MidiSkip naming why it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise MidiSkip(path, MISSING)
    if path.stat().st_size == 0:
        raise MidiSkip(path, EMPTY_FILE)
    try:
        score = symusic.Score(str(path))
    except Exception as err:  # symusic raises RuntimeError/ValueError/IndexError on bad bytes
        raise MidiSkip(path, UNREADABLE, str(err)[:200]) from err
    if score.note_num() == 0:
        raise MidiSkip(path, NO_NOTES)
    seconds = score.to("second").end()
    if seconds > max_seconds:
        raise MidiSkip(path, TOO_LONG, f"{seconds:.0f} s > {max_seconds:.0f} s")
    return score


def merge_tracks(score: symusic.Score, program: int = 0, name: str = "merged") -> symusic.Score:
    """All pitched tracks merged into one (drums dropped): the single-stream view."""
    merged = score.copy()
    pitched = [t for t in merged.tracks if not t.is_drum]
    out = symusic.Track(name=name, program=program)
    for track in pitched:
        out.notes.extend(track.notes)
        out.pedals.extend(track.pedals)
    out.notes.sort()
    merged.tracks = [out] if len(out.notes) else []
    return merged


def piano_roll(score: symusic.Score, steps_per_quarter: int = 4) -> np.ndarray:
    """(128, T) max-velocity roll of all pitched tracks on a 1/steps_per_quarter grid."""
    score = score.resample(tpq=steps_per_quarter, min_dur=1)
    roll = np.zeros((128, max(score.end(), 1)), dtype=np.uint8)
    for track in score.tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            end = max(note.time + note.duration, note.time + 1)
            roll[note.pitch, note.time:end] = np.maximum(roll[note.pitch, note.time:end], note.velocity)
    return roll


def save_piano_roll_png(score: symusic.Score, path: Path | str, title: str = "") -> Path:
    """A piano-roll picture of the score (pitch vs 16th-note steps, colour = velocity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = piano_roll(score)
    used = np.nonzero(roll.any(axis=1))[0]
    lo, hi = (int(used.min()) - 2, int(used.max()) + 3) if used.size else (21, 109)
    fig, ax = plt.subplots(figsize=(min(24, 4 + roll.shape[1] / 32), 4), dpi=100)
    ax.imshow(roll[lo:hi], origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
              extent=(0, roll.shape[1] / 4, lo, hi))
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or Path(path).stem)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
