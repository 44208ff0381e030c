"""Fixed-length piano-roll windows for the fractal family: source -> rolls (cached) -> windows.

Each batch is a dict of `velocity` (B, T, P) long 0..127 (0 = no onset), `duration` (B, T, P)
long steps, `chroma` (B, 12) float (the whole piece's pitch-class profile, the global
condition), `song` (B,) index into `self.songs` and `start` (B,) the window's first step.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import SplitDataModule
from datamodules.midi_io import MidiSkip, load_score
from datamodules.piano_roll import Roll, cut_window, piece_chroma, score_to_roll, window_starts
from datamodules.sources.base import MidiItem
from datamodules.splits import split_by_piece

log = logging.getLogger(__name__)
CACHE_VERSION = 1


@dataclass
class Song:
    item: MidiItem
    roll: Roll
    chroma: np.ndarray  # (12,)


class RollWindows(Dataset):
    def __init__(self, songs: list[Song], song_ids: list[int], window_steps: int, hop_steps: int,
                 bar_steps: int, max_windows_per_song: int | None = None):
        self.songs, self.window_steps = songs, window_steps
        self.index: list[tuple[int, int]] = []
        for s in song_ids:
            starts = window_starts(songs[s].roll, window_steps, hop_steps, bar_steps)
            self.index += [(s, st) for st in starts[:max_windows_per_song]]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s, start = self.index[i]
        song = self.songs[s]
        vel, dur = cut_window(song.roll, start, self.window_steps)
        return {"velocity": torch.from_numpy(vel.astype(np.int64)),
                "duration": torch.from_numpy(dur.astype(np.int64)),
                "chroma": torch.from_numpy(song.chroma), "song": s, "start": start}


class FractalDataModule(SplitDataModule):
    """source: any MidiSource; when it has `annotations(item)` (POP909) and use_beats, the grid
    follows the annotated beats. window_bars * beats_per_bar * steps_per_beat steps per window.
    max_windows_per_song: keep only the first N windows of each song (overfit runs)."""

    def __init__(self, source, cache_dir: str, steps_per_beat: int = 4, beats_per_bar: int = 4,
                 window_bars: int = 16, train_hop_bars: int | None = None, pitch_low: int = 21,
                 n_pitches: int = 88, use_beats: bool = True, batch_size: int = 8,
                 num_workers: int = 0, val_frac: float = 0.1, test_frac: float = 0.1,
                 split_seed: int = 0, limit_files: int | None = None,
                 max_windows_per_song: int | None = None, train_on_all: bool = False,
                 seed: int = 0, root: str | None = None, summary_dir: str | None = None):
        super().__init__()
        self.source, self.cache_dir = source, Path(cache_dir) / "fractal_rolls"
        self.steps_per_beat, self.beats_per_bar, self.window_bars = steps_per_beat, beats_per_bar, window_bars
        self.bar_steps = steps_per_beat * beats_per_bar
        self.window_steps = window_bars * self.bar_steps
        self.train_hop = (train_hop_bars or max(window_bars // 2, 1)) * self.bar_steps
        self.pitch_low, self.n_pitches, self.use_beats = pitch_low, n_pitches, use_beats
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_frac, self.test_frac, self.split_seed = val_frac, test_frac, split_seed
        self.limit_files, self.max_windows_per_song = limit_files, max_windows_per_song
        self.train_on_all, self.seed, self.summary_dir = train_on_all, seed, summary_dir
        self.songs: list[Song] = []
        self.skipped: Counter = Counter()
        self.datasets: dict[str, RollWindows] = {}

    def model_kwargs(self) -> dict:
        qpm = float(np.median([s.roll.qpm for s in self.songs])) if self.songs else 120.0
        return {"n_pitches": self.n_pitches, "pitch_low": self.pitch_low,
                "window_steps": self.window_steps, "steps_per_beat": self.steps_per_beat,
                "beats_per_bar": self.beats_per_bar, "qpm": round(qpm, 2)}

    # ---- rolls -------------------------------------------------------------------------------
    def _settings(self) -> dict:
        return {"v": CACHE_VERSION, "spb": self.steps_per_beat, "low": self.pitch_low,
                "n": self.n_pitches, "beats": self.use_beats, "tracks": str(getattr(self.source, "tracks", ""))}

    def _cache_path(self, item: MidiItem) -> Path:
        stat = item.path.stat()
        key = json.dumps([str(item.path.resolve()), stat.st_size, stat.st_mtime_ns, self._settings()])
        return self.cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"

    def roll_of(self, item: MidiItem) -> Song:
        path = self._cache_path(item)
        if path.is_file():
            z = np.load(path)
            roll = Roll(z["velocity"], z["duration"], int(z["first_downbeat"]), float(z["qpm"]))
            return Song(item, roll, z["chroma"])
        score = self.source.load_score(item) if hasattr(self.source, "load_score") else load_score(item.path)
        if score.note_num() == 0:
            raise MidiSkip(item.path, "no_notes")
        beats = downbeats = None
        if self.use_beats and hasattr(self.source, "annotations"):
            ann = self.source.annotations(item)
            beats, downbeats = ann.beats[:, 0], ann.downbeats
        roll = score_to_roll(score, self.steps_per_beat, self.pitch_low, self.n_pitches, beats, downbeats)
        chroma = piece_chroma(score)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, velocity=roll.velocity, duration=roll.duration,
                            first_downbeat=roll.first_downbeat, qpm=roll.qpm, chroma=chroma)
        tmp.replace(path)
        return Song(item, roll, chroma)

    def prepare_data(self) -> None:
        self._load_songs()

    def _load_songs(self) -> None:
        if self.songs:
            return
        items = self.source.items()[: self.limit_files] if self.limit_files else self.source.items()
        for item in items:
            try:
                self.songs.append(self.roll_of(item))
            except (MidiSkip, FileNotFoundError, ValueError) as err:
                reason = getattr(err, "reason", type(err).__name__)
                self.skipped[reason] += 1
                log.warning("fractal data: skipped %s (%s)", item.path, err)
        if not self.songs:
            raise RuntimeError(f"no usable songs among {len(items)} from {type(self.source).__name__} "
                               f"(skips: {dict(self.skipped)}); check data.source / data.root")
        log.info("fractal data: %d songs, %d skipped %s", len(self.songs), sum(self.skipped.values()),
                 dict(self.skipped))

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._load_songs()
        splits = split_by_piece([s.item.piece_id for s in self.songs], self.val_frac, self.test_frac,
                                self.split_seed)
        by_split = {name: [i for i, s in enumerate(self.songs) if splits[s.item.piece_id] == name]
                    for name in ("train", "val", "test")}
        if self.train_on_all:  # overfit runs: every split is the same handful of songs
            by_split = {name: list(range(len(self.songs))) for name in by_split}
        for name, ids in by_split.items():
            hop = self.train_hop if name == "train" else self.window_steps
            self.datasets[name] = RollWindows(self.songs, ids, self.window_steps, hop, self.bar_steps,
                                              self.max_windows_per_song)
        sizes = {k: len(v) for k, v in self.datasets.items()}
        log.info("fractal windows per split: %s", sizes)
        if self.summary_dir:
            out = Path(self.summary_dir) / "data_summary.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"songs": len(self.songs), "skipped": dict(self.skipped),
                                       "windows": sizes}, indent=1))

    def _loader(self, name: str) -> DataLoader:
        return DataLoader(self.datasets[name], batch_size=self.batch_size, num_workers=self.num_workers,
                          shuffle=name == "train", generator=torch.Generator().manual_seed(self.seed))
