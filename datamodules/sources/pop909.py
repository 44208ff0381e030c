"""POP909: 909 pop songs for piano (MELODY / BRIDGE / PIANO tracks) with beat, chord and
key annotations in seconds. Layout: `<root>/NNN/NNN.mid` plus `beat_midi.txt`,
`chord_midi.txt`, `key_audio.txt` (tab or space separated)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from datamodules.sources.base import MidiItem
from datamodules.sources.folder import missing_root_error

TRACK_NAMES = ("MELODY", "BRIDGE", "PIANO")


def _rows(path: Path) -> list[list[str]]:
    """Whitespace-split non-empty lines (tabs and spaces both occur in the wild)."""
    if not path.is_file():
        raise FileNotFoundError(f"POP909 annotation file missing: {path}")
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def read_beats(song_dir: str | Path) -> np.ndarray:
    """`beat_midi.txt` -> float array (n, 3): [time_s, is_half_bar, is_downbeat].

    is_half_bar is 1 on every second beat (beats 1 and 3 of a 4/4 bar), is_downbeat on
    beat 1 of each bar.
    """
    rows = _rows(Path(song_dir) / "beat_midi.txt")
    beats = np.array([[float(v) for v in row[:3]] for row in rows], dtype=np.float64)
    return beats.reshape(-1, 3)


def _segments(path: Path) -> list[tuple[float, float, str]]:
    return [(float(row[0]), float(row[1]), " ".join(row[2:])) for row in _rows(path)]


def read_chords(song_dir: str | Path) -> list[tuple[float, float, str]]:
    """`chord_midi.txt` -> [(start_s, end_s, Harte label)]; `N` marks no chord."""
    return _segments(Path(song_dir) / "chord_midi.txt")


def read_keys(song_dir: str | Path) -> list[tuple[float, float, str]]:
    """`key_audio.txt` -> [(start_s, end_s, key label such as `Gb:maj`)]."""
    return _segments(Path(song_dir) / "key_audio.txt")


@dataclass(frozen=True)
class SongAnnotations:
    song_id: str
    beats: np.ndarray  # (n, 3) [time_s, is_half_bar, is_downbeat]
    chords: list[tuple[float, float, str]]
    keys: list[tuple[float, float, str]]

    @property
    def downbeats(self) -> np.ndarray:
        return self.beats[self.beats[:, 2] > 0.5, 0]


def song_annotations(song_dir: str | Path) -> SongAnnotations:
    song_dir = Path(song_dir)
    return SongAnnotations(song_id=song_dir.name, beats=read_beats(song_dir),
                           chords=read_chords(song_dir), keys=read_keys(song_dir))


class Pop909Source:
    """The 909 songs as `NNN/NNN.mid`; piece_id = song id (`001`).

    tracks: names of the tracks `load_score` keeps (subset of MELODY, BRIDGE, PIANO);
        None keeps all three.
    """

    name = "pop909"

    def __init__(self, root: str | Path, tracks: list[str] | tuple[str, ...] | None = None,
                 config_key: str = "data.root"):
        self.root = Path(root).expanduser()
        self.config_key = config_key
        if tracks is not None:
            unknown = sorted(set(tracks) - set(TRACK_NAMES))
            if unknown:
                raise ValueError(f"unknown POP909 track(s) {unknown}; choose from {TRACK_NAMES}")
        self.tracks = tuple(tracks) if tracks is not None else None

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise missing_root_error(self.root, "POP909", self.config_key)

    def song_dir(self, song_id: str) -> Path:
        return self.root / song_id

    def items(self) -> list[MidiItem]:
        self._check_root()
        songs = sorted(d for d in self.root.iterdir() if d.is_dir() and d.name.isdigit())
        items = [MidiItem(d / f"{d.name}.mid", d.name, self.name)
                 for d in songs if (d / f"{d.name}.mid").is_file()]
        if not items:
            raise FileNotFoundError(
                f"no POP909 songs (NNN/NNN.mid) under {self.root}: does `{self.config_key}` "
                "point at the pop909 folder itself?")
        return items

    def annotations(self, item: MidiItem) -> SongAnnotations:
        return song_annotations(item.path.parent)

    def load_score(self, item: MidiItem) -> symusic.Score:
        """The song's MIDI with only the configured tracks kept, in the configured order."""
        score = symusic.Score(str(item.path))
        if self.tracks is not None:
            by_name = {track.name.strip().upper(): track for track in score.tracks}
            score.tracks = [by_name[name] for name in self.tracks if name in by_name]
        return score
