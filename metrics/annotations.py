"""Chord annotations as ChordSpans (seconds on the MIDI file's own timeline).

- POP909: `chord_midi.txt` beside `NNN.mid` (Harte labels, already on the MIDI timeline).
- POP909's MIDI files mostly declare 1/4 (617 of 909) or 2/4: `with_pop909_meter` puts
  the meter of `beat_midi.txt` (beats between downbeats, from the first downbeat) in its place.
- A score with a block-chord track (the WJazzD conversion's CHORDS track, one close voicing
  per chord change): each voicing is read back as the chord it voices.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import symusic

from datamodules.chords import CHORD_QUALITIES, Chord, parse_pop909_chord
from datamodules.sources.pop909 import read_beats, read_chords
from metrics.notes import ChordSpan, Piece

log = logging.getLogger(__name__)

CHORD_TRACK = "CHORDS"


def pop909_chord_spans(song_dir: str | Path) -> list[ChordSpan]:
    return [ChordSpan(start, end, parse_pop909_chord(label))
            for start, end, label in read_chords(song_dir)]


def with_pop909_meter(score: symusic.Score, song_dir: str | Path) -> symusic.Score:
    """A copy whose time signature is the annotated meter, bar lines from the first downbeat.

    Before the first downbeat: 4/4 bars from tick 0, the last one cut short (a pickup).
    """
    beats = read_beats(song_dir)
    downbeat_rows = np.nonzero(beats[:, 2] > 0.5)[0]
    if downbeat_rows.size < 2:
        log.debug("%s: fewer than 2 annotated downbeats, meter left as is", song_dir)
        return score
    beats_per_bar = int(np.bincount(np.diff(downbeat_rows)).argmax())
    grid = np.arange(0, max(score.end(), 1) + 4 * score.tpq, score.tpq // 4, dtype=np.int64)
    grid_seconds = Piece(score).seconds_of_ticks(grid)
    first = round(float(np.interp(beats[downbeat_rows[0], 0], grid_seconds, grid)))
    fixed = score.copy()
    fixed.time_signatures = [symusic.TimeSignature(first, beats_per_bar, 4)]
    if first > 0:  # pickup: one bar from 0 to the first downbeat
        fixed.time_signatures.insert(0, symusic.TimeSignature(0, 4, 4))
    return fixed


def chord_of_voicing(pitches: list[int]) -> Chord | None:
    """The chord a close voicing spells: root position first, else a slash chord."""
    pcs = frozenset(p % 12 for p in pitches)
    lowest = min(pitches) % 12
    for bass_is_root in (True, False):
        for quality in CHORD_QUALITIES:
            for root in ([lowest] if bass_is_root else range(12)):
                chord = Chord(root, quality, None if bass_is_root else lowest)
                if chord.pitch_classes() == pcs:
                    return chord
    return None


def chord_track_spans(score: symusic.Score, track_name: str = CHORD_TRACK) -> list[ChordSpan] | None:
    """Chord spans read off a block-chord track, None when the score has no such track."""
    tracks = [t for t in score.tracks if t.name.strip().upper() == track_name]
    if not tracks:
        return None
    seconds = score.to("second")
    track = seconds.tracks[list(score.tracks).index(tracks[0])]
    notes = track.notes.numpy()
    spans = []
    onsets = np.round(notes["time"], 6)
    for onset in np.unique(onsets):
        chosen = onsets == onset
        chord = chord_of_voicing(notes["pitch"][chosen].astype(int).tolist())
        if chord is None:
            log.debug("chord track voicing at %.2f s matches no chord quality", onset)
        end = float((notes["time"][chosen] + notes["duration"][chosen]).max())
        spans.append(ChordSpan(float(onset), end, chord))
    return spans


def apply_annotations(midi_path: str | Path, score: symusic.Score
                      ) -> tuple[symusic.Score, list[ChordSpan] | None]:
    """(score, chords) with what is found beside / inside the file: POP909's annotated meter
    and chords, or a chord track; chords None when there are none."""
    folder = Path(midi_path).parent
    if (folder / "beat_midi.txt").is_file():
        score = with_pop909_meter(score, folder)
    if (folder / "chord_midi.txt").is_file():
        return score, pop909_chord_spans(folder)
    return score, chord_track_spans(score)


def without_tracks(score: symusic.Score, names: set[str]) -> symusic.Score:
    """A copy keeping only the tracks whose (upper-case) name is not in `names`."""
    kept = score.copy()
    kept.tracks = [t for t in kept.tracks if t.name.strip().upper() not in names]
    return kept
