"""MIDI files made in code for tests: valid ones with known notes, and hostile ones."""
from __future__ import annotations

import random
from pathlib import Path

import symusic


def make_score(n_bars: int = 4, tpq: int = 480, seed: int = 0, tracks: int = 2) -> symusic.Score:
    """A grid-aligned multi-track score (eighth notes) whose notes survive tokenization exactly."""
    rng = random.Random(seed)
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, 120.0))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    for t in range(tracks):
        track = symusic.Track(name=f"part{t}", program=0)
        for step in range(n_bars * 8):
            pitch = 48 + 12 * t + rng.randrange(12)
            track.notes.append(symusic.Note(step * tpq // 2, tpq // 2, pitch, 64 + rng.randrange(4) * 16))
        score.tracks.append(track)
    return score


def write_messy_folder(root: Path, n_valid: int = 3) -> dict[str, str]:
    """Valid files plus one of each hostile kind; returns {file name: expected skip reason}."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_valid):
        make_score(seed=i).dump_midi(str(root / f"valid_{i}.mid"))
    make_score(seed=99, tpq=960).dump_midi(str(root / " leading space.MID"))
    good = (root / "valid_0.mid").read_bytes()
    (root / "random_bytes.mid").write_bytes(bytes(random.Random(1).randrange(256) for _ in range(500)))
    (root / "truncated.mid").write_bytes(good[: len(good) // 3])
    (root / "empty.mid").write_bytes(b"")
    silent = symusic.Score(480)
    silent.tracks.append(symusic.Track(name="silent"))
    silent.dump_midi(str(root / "no_notes.mid"))
    far = make_score(seed=5)
    far.tracks[0].notes.append(symusic.Note(100_000_000, 480, 60, 80))  # a huge delta time: ~29 hours
    far.dump_midi(str(root / "huge_delta.mid"))
    return {"random_bytes.mid": "unreadable", "truncated.mid": "unreadable", "empty.mid": "empty_file",
            "no_notes.mid": "no_notes", "huge_delta.mid": "too_long"}
