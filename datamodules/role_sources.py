"""Split pieces of each data source into (conditioning, target) scores for one role.

- wjazzd:   lead = SOLO | CHORDS + BASS;   bass = BASS | CHORDS
- pop909:   lead = MELODY | PIANO (+ BRIDGE when include_bridge)
- chorales: lead = Soprano | Alto + Tenor + Bass;   bass = Bass | Soprano + Alto + Tenor
- folder:   lead = top track | lower tracks (files with >= 2 pitched tracks), else the top line
            (highest note of each onset) at or above split_pitch | the notes below it.
Each candidate is loaded lazily (`RoleCandidate.load`) so one broken piece costs only itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import symusic

from datamodules.midi_io import load_score
from datamodules.sources.pop909 import read_keys

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class RoleSkip(Exception):
    """A piece (or one transposition of it) left out of the role data set, with a reason."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class RolePair:
    conditioning: symusic.Score
    target: symusic.Score
    key: str | None = None  # annotated key ("G:min"), None = estimate from the notes


@dataclass(frozen=True)
class RoleCandidate:
    name: str  # file stem, unique within the source
    piece_id: str  # split key shared by every version of a piece
    path: Path
    load: Callable[[], RolePair]


def with_tracks(score: symusic.Score, tracks: list) -> symusic.Score:
    out = score.copy()
    out.tracks = [t.copy() for t in tracks]
    return out


def tracks_by_name(score: symusic.Score) -> dict[str, symusic.Track]:
    return {t.name.strip().upper(): t for t in score.tracks if not t.is_drum}


def split_named(score: symusic.Score, target: str, conditioning: list[str]) -> RolePair:
    named = tracks_by_name(score)
    if target.upper() not in named or len(named[target.upper()].notes) == 0:
        raise RoleSkip("empty_target", f"no notes in track {target} (tracks: {sorted(named)})")
    cond = [named[n.upper()] for n in conditioning if n.upper() in named and len(named[n.upper()].notes)]
    if not cond:
        raise RoleSkip("empty_conditioning", f"no notes in tracks {conditioning}")
    return RolePair(with_tracks(score, cond), with_tracks(score, [named[target.upper()]]))


def key_name(tonic_pc: int, minor: bool) -> str:
    return f"{PITCH_NAMES[tonic_pc % 12]}:{'min' if minor else 'maj'}"


def transpose_key(key: str, semitones: int) -> str:
    tonic, _, mode = key.partition(":")
    pc = PITCH_NAMES.index(tonic) if tonic in PITCH_NAMES else _note_pc(tonic)
    return f"{PITCH_NAMES[(pc + semitones) % 12]}:{mode}"


def _note_pc(name: str) -> int:
    pc = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[name[0].upper()]
    return (pc + name[1:].count("#") - name[1:].count("b")) % 12


def estimate_key(*scores: symusic.Score) -> str:
    """Krumhansl-Schmuckler: the major/minor profile best correlated with the duration-weighted
    pitch-class histogram of all notes."""
    hist = np.zeros(12)
    for score in scores:
        for track in score.tracks:
            if track.is_drum or not len(track.notes):
                continue
            arr = track.notes.numpy()
            np.add.at(hist, arr["pitch"] % 12, arr["duration"].astype(np.float64))
    if not hist.any():
        return "C:maj"
    best = max(((np.corrcoef(hist, np.roll(profile, tonic))[0, 1], tonic, minor)
                for minor, profile in ((False, _MAJOR), (True, _MINOR)) for tonic in range(12)))
    return key_name(best[1], best[2])


def key_from_signature(score: symusic.Score) -> str | None:
    if not len(score.key_signatures):
        return None
    ks = score.key_signatures[0]
    major_tonic = (7 * ks.key) % 12
    return key_name(major_tonic + 9 if ks.tonality else major_tonic, bool(ks.tonality))


def pop909_key(song_dir: Path) -> str | None:
    try:
        keys = read_keys(song_dir)
    except FileNotFoundError:
        return None
    if not keys:
        return None
    tonic, _, mode = keys[0][2].partition(":")
    return key_name(_note_pc(tonic), mode.startswith("min"))


def top_line_split(score: symusic.Score, split_pitch: int) -> RolePair:
    """Target = highest note of each onset at or above split_pitch; conditioning = notes below."""
    notes = [n for t in score.tracks if not t.is_drum for n in t.notes]
    if not notes:
        raise RoleSkip("no_notes")
    top: dict[int, symusic.Note] = {}
    below = symusic.Track("LOWER", 0, False)
    for note in notes:
        if note.pitch < split_pitch:
            below.notes.append(note)
        elif note.time not in top or note.pitch > top[note.time].pitch:
            top[note.time] = note
    line = symusic.Track("TOP", 0, False)
    line.notes.extend(top[t] for t in sorted(top))
    below.notes.sort()
    if not len(line.notes):
        raise RoleSkip("empty_target", f"no notes at or above split_pitch {split_pitch}")
    if not len(below.notes):
        raise RoleSkip("empty_conditioning", f"no notes below split_pitch {split_pitch}")
    return RolePair(with_tracks(score, [below]), with_tracks(score, [line]))


def folder_pair(score: symusic.Score, split_pitch: int) -> RolePair:
    pitched = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    if len(pitched) < 2:
        return top_line_split(score, split_pitch)
    by_height = sorted(pitched, key=lambda t: float(np.mean(t.notes.numpy()["pitch"])), reverse=True)
    return RolePair(with_tracks(score, by_height[1:]), with_tracks(score, by_height[:1]))


ROLE_TRACKS = {  # source -> role -> (target track, conditioning tracks)
    "wjazzd": {"lead": ("SOLO", ["CHORDS", "BASS"]), "bass": ("BASS", ["CHORDS"])},
    "chorales": {"lead": ("Soprano", ["Alto", "Tenor", "Bass"]),
                 "bass": ("Bass", ["Soprano", "Alto", "Tenor"])},
    "pop909": {"lead": ("MELODY", ["PIANO"])},
    "folder": {"lead": None},
}


def candidates(source: str, role: str, root: str | None, cache_dir: str, limit: int | None = None,
               include_bridge: bool = False, split_pitch: int = 60) -> list[RoleCandidate]:
    """Every piece of `source` as a lazily loaded (conditioning, target) pair for `role`."""
    if source not in ROLE_TRACKS:
        raise ValueError(f"unknown role source {source!r}; choose from {sorted(ROLE_TRACKS)}")
    if role not in ROLE_TRACKS[source]:
        raise ValueError(f"source {source!r} has no role {role!r}; it has {sorted(ROLE_TRACKS[source])}")
    spec = ROLE_TRACKS[source][role]
    if source == "wjazzd":
        from datamodules.sources.wjazzd import WJazzDSource
        items = WJazzDSource(root, cache_dir, limit=limit, config_key="root").items()
    elif source == "chorales":
        from datamodules.sources.chorales import ChoraleSource
        items = ChoraleSource(cache_dir, limit=limit).items()
    elif source == "pop909":
        from datamodules.sources.pop909 import Pop909Source
        items = Pop909Source(root, config_key="root").items()[:limit]
    else:
        from datamodules.sources.folder import MidiFolderSource
        items = MidiFolderSource(root, config_key="root").items()[:limit]

    def loader(path: Path) -> Callable[[], RolePair]:
        def load() -> RolePair:
            score = load_score(path)
            if source == "folder":
                return folder_pair(score, split_pitch)
            target, cond = spec
            if source == "pop909" and include_bridge:
                cond = cond + ["BRIDGE"]
            pair = split_named(score, target, cond)
            pair.key = pop909_key(path.parent) if source == "pop909" else key_from_signature(score)
            return pair
        return load

    safe = lambda text: re.sub(r"[^A-Za-z0-9._+-]+", "_", text.strip())  # noqa: E731
    return [RoleCandidate(safe(item.path.stem), item.piece_id, item.path, loader(item.path))
            for item in items]
