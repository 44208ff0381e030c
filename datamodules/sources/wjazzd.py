"""Weimar Jazz Database solos (CSV) converted to MIDI on a real beat grid.

Each `mcsv_melody/<Artist>_<Tune>_FINAL.csv` (+ `mcsv_beat/..._FINAL_beattrack.csv`)
becomes `<cache_dir>/wjazzd_midi/<Artist>_<Tune>.mid` with tracks SOLO, CHORDS, BASS.
Beat k of the beat track sits on tick (k + pickup) * tpq; a tempo event per beat makes the
file's seconds follow the recording, and note times map to ticks piecewise-linearly
between beat onsets.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import symusic

from datamodules.chords import parse_wjazzd_chord, voice_chord
from datamodules.sources.base import MidiItem
from datamodules.sources.cache import (
    atomic_dump_midi,
    cache_lock,
    make_progress,
    read_manifest,
    write_manifest,
)
from datamodules.sources.folder import missing_root_error

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
PROGRAMS = {"SOLO": 66, "CHORDS": 0, "BASS": 32}  # GM tenor sax, piano, acoustic bass
MELODY_SUFFIX = "_FINAL.csv"
BEAT_SUFFIX = "_FINAL_beattrack.csv"


class SoloSkip(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def wjazzd_piece_id(stem: str, group_by: str = "artist_tune") -> str:
    """`SonnyRollins_BlueSeven-2_FINAL` -> `SonnyRollins_BlueSeven`.

    Solo-number suffixes (`-1`, `_2`) and third name fields (`_AlternateTake2`, `_1961`,
    `_No1`) mark other takes of the same tune by the same artist, so they share a piece.
    group_by="tune" drops the artist too (same changes played by different soloists).
    """
    stem = stem.removesuffix("_FINAL").removesuffix("_FINAL_beattrack")
    artist, _, rest = stem.partition("_")
    tune = re.sub(r"[-_]\d+$", "", rest.split("_")[0]) if rest else ""
    if group_by == "tune":
        return tune or artist
    if group_by != "artist_tune":
        raise ValueError(f"group_by must be 'artist_tune' or 'tune', got {group_by!r}")
    return f"{artist}_{tune}" if tune else artist


def _meter(signature: str) -> tuple[int, int]:
    """`'4/4'` or `\"\"\"4/4\"\"\"` -> (4, 4)."""
    numerator, denominator = str(signature).strip(" '\"").split("/")
    return int(numerator), int(denominator)


@dataclass(frozen=True)
class BeatGrid:
    """Beat onsets (s, strictly increasing) and the ticks they sit on."""

    onsets: np.ndarray
    ticks: np.ndarray
    tpq: int

    def to_ticks(self, seconds) -> np.ndarray:
        """Piecewise-linear seconds -> ticks, extrapolated with the nearest interval."""
        s = np.asarray(seconds, dtype=np.float64)
        on, tk = self.onsets, self.ticks.astype(np.float64)
        out = np.interp(s, on, tk)
        first_rate = (tk[1] - tk[0]) / (on[1] - on[0])
        last_rate = (tk[-1] - tk[-2]) / (on[-1] - on[-2])
        out = np.where(s < on[0], tk[0] - (on[0] - s) * first_rate, out)
        out = np.where(s > on[-1], tk[-1] + (s - on[-1]) * last_rate, out)
        return np.round(out).astype(np.int64)

    def tempos(self) -> list[symusic.Tempo]:
        """One tempo per beat interval; the first also covers the lead-in from tick 0."""
        qpm = (np.diff(self.ticks) / self.tpq) / (np.diff(self.onsets) / 60.0)
        times = self.ticks[:-1].copy()
        times[0] = 0
        return [symusic.Tempo(int(t), float(q)) for t, q in zip(times, qpm)]


def _beat_table_from_beat_track(beats: pd.DataFrame) -> pd.DataFrame:
    """Beat-track rows with a `beat_index`: consecutive beats, bar 1 of the first row at 0."""
    table = beats.reset_index(drop=True).copy()
    table["beat_index"] = np.arange(len(table)) + int(table["beat"].iloc[0]) - 1
    return table


def _beat_table_from_melody(melody: pd.DataFrame) -> pd.DataFrame:
    """Fallback without a beat track: beat onsets estimated from the notes' metrical
    positions (onset minus its tatum offset), one row per beat that has notes."""
    offset = (melody["tatum"] - 1) / melody["division"] * melody["beat_duration"]
    notes = melody.assign(beat_onset=melody["onset"] - offset)
    table = (notes.groupby(["bar", "beat"], sort=True)
             .agg(onset=("beat_onset", "median"), signature=("signature", "first"),
                  chord=("chord", "first")).reset_index())
    numerators = table.groupby("bar")["signature"].first().map(lambda s: _meter(s)[0])
    bars = range(int(table["bar"].min()), int(table["bar"].max()) + 1)
    bar_start, position, numerator = {}, 0, int(numerators.iloc[0])
    for bar in bars:
        numerator = int(numerators.get(bar, numerator))
        bar_start[bar] = position
        position += numerator
    table["beat_index"] = [bar_start[b] + beat - 1 for b, beat in zip(table["bar"], table["beat"])]
    return table


def _build_grid(table: pd.DataFrame, earliest_s: float, tpq: int) -> tuple[BeatGrid, int]:
    """The grid over the table's beats, and the lead-in (ticks, whole bars) added in front
    when notes start before the first bar line."""
    usable = table[np.r_[True, np.diff(table["onset"].to_numpy()) > 0]]  # strictly increasing
    if len(usable) < 2:
        raise SoloSkip("too_few_beats", f"{len(usable)} usable beats")
    onsets = usable["onset"].to_numpy(dtype=np.float64)
    ticks = usable["beat_index"].to_numpy(dtype=np.int64) * tpq
    first = int(BeatGrid(onsets, ticks, tpq).to_ticks([earliest_s])[0])
    lead_in = 0
    if first < 0:
        bar_ticks = _meter(table["signature"].iloc[0])[0] * tpq
        lead_in = math.ceil(-first / bar_ticks) * bar_ticks
    return BeatGrid(onsets, ticks + lead_in, tpq), lead_in


def _velocities(melody: pd.DataFrame, columns: tuple[str, ...], low: int, high: int,
                default: int) -> np.ndarray:
    """Loudness mapped linearly so its 5th..95th percentile spans [low, high]; default
    where the column is missing, NaN or constant."""
    for column in columns:
        if column not in melody:
            continue
        loud = pd.to_numeric(melody[column], errors="coerce").to_numpy(dtype=np.float64)
        finite = np.isfinite(loud)
        if finite.sum() < 2:
            continue
        p5, p95 = np.percentile(loud[finite], [5, 95])
        if p95 - p5 < 1e-9:
            continue
        scaled = low + (loud - p5) / (p95 - p5) * (high - low)
        scaled = np.where(finite, scaled, default)
        return np.clip(np.round(scaled), 1, 127).astype(int)
    return np.full(len(melody), default, dtype=int)


def convert_solo(melody_csv: str | Path, beat_csv: str | Path | None = None, tpq: int = 480,
                 chord_low: int = 48, default_velocity: int = 90,
                 velocity_range: tuple[int, int] = (40, 110), chord_velocity: int = 60,
                 bass_velocity: int = 80,
                 loudness_columns: tuple[str, ...] = ("loud_median", "loud_max"),
                 ) -> symusic.Score:
    """One WJazzD solo -> Score with SOLO, CHORDS and (if the beat track has it) BASS.

    Without a beat track the grid comes from the melody's own bar/beat/tatum columns and
    the chords from its chord column.
    """
    melody = pd.read_csv(melody_csv)
    required = {"onset", "duration", "pitch", "bar", "beat", "signature"}
    if not required <= set(melody.columns):
        raise SoloSkip("missing_columns", f"melody lacks {sorted(required - set(melody.columns))}")
    if melody.empty:
        raise SoloSkip("no_notes")
    beats = pd.read_csv(beat_csv) if beat_csv is not None and Path(beat_csv).is_file() else None
    if beats is not None and not beats.empty:
        table = _beat_table_from_beat_track(beats)
    else:
        table = _beat_table_from_melody(melody)
    grid, lead_in = _build_grid(table, float(melody["onset"].min()), tpq)
    beat_ticks = table["beat_index"].to_numpy(dtype=np.int64) * tpq + lead_in

    score = symusic.Score(tpq)
    score.tempos.extend(grid.tempos())
    previous = None
    for tick, beat, signature in zip(beat_ticks, table["beat"], table["signature"]):
        meter = _meter(signature)
        if meter != previous and (beat == 1 or previous is None):
            bar_tick = 0 if previous is None else int(tick)
            score.time_signatures.append(symusic.TimeSignature(bar_tick, *meter))
            previous = meter

    solo = symusic.Track("SOLO", PROGRAMS["SOLO"], False)
    starts = grid.to_ticks(melody["onset"])
    ends = grid.to_ticks(melody["onset"] + melody["duration"].clip(lower=0))
    velocities = _velocities(melody, loudness_columns, *velocity_range, default_velocity)
    for start, end, pitch, velocity in zip(starts, ends, melody["pitch"], velocities):
        solo.notes.append(symusic.Note(int(start), max(1, int(end - start)),
                                       round(float(pitch)), int(velocity)))
    score.tracks.append(solo)

    chords = symusic.Track("CHORDS", PROGRAMS["CHORDS"], False)
    labels = table["chord"].astype(str).str.strip().to_numpy() if "chord" in table else []
    segment_ends = list(beat_ticks[1:]) + [int(beat_ticks[-1]) + tpq]
    start_index = 0
    for i in range(len(labels)):
        if i + 1 < len(labels) and labels[i + 1] == labels[start_index]:
            continue  # the same chord continues on the next beat
        chord = parse_wjazzd_chord(labels[start_index])
        if chord is not None:
            start, end = int(beat_ticks[start_index]), int(segment_ends[i])
            for pitch in voice_chord(chord, low=chord_low):
                chords.notes.append(symusic.Note(start, end - start, pitch, chord_velocity))
        start_index = i + 1
    score.tracks.append(chords)

    if "bass" in table:
        bass = symusic.Track("BASS", PROGRAMS["BASS"], False)
        pitches = pd.to_numeric(table["bass"], errors="coerce").to_numpy()
        for tick, pitch in zip(beat_ticks, pitches):
            if np.isfinite(pitch) and 0 < pitch < 128:
                bass.notes.append(symusic.Note(int(tick), tpq, round(float(pitch)), bass_velocity))
        if len(bass.notes):
            score.tracks.append(bass)
    return score


class WJazzDSource:
    """WJazzD solos as MIDI in `<cache_dir>/wjazzd_midi/`, converted once (manifest).

    root: the folder holding `mcsv_melody/` and `mcsv_beat/`.
    group_by: piece_id granularity, "artist_tune" (takes of one tune by one soloist
        share a piece) or "tune".
    The remaining arguments are passed to `convert_solo`.
    """

    name = "wjazzd"

    def __init__(self, root: str | Path, cache_dir: str | Path, limit: int | None = None,
                 group_by: str = "artist_tune", tpq: int = 480, chord_low: int = 48,
                 default_velocity: int = 90, velocity_range: tuple[int, int] = (40, 110),
                 chord_velocity: int = 60, bass_velocity: int = 80,
                 show_progress: bool = True, config_key: str = "data.root"):
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.midi_dir = self.cache_dir / "wjazzd_midi"
        self.manifest_path = self.midi_dir / "manifest.json"
        self.limit, self.group_by = limit, group_by
        wjazzd_piece_id("A_B", group_by)  # validate early
        self.show_progress, self.config_key = show_progress, config_key
        self.conversion = {"tpq": tpq, "chord_low": chord_low,
                           "default_velocity": default_velocity,
                           "velocity_range": list(velocity_range),
                           "chord_velocity": chord_velocity, "bass_velocity": bass_velocity}

    def melody_files(self) -> list[Path]:
        melody_dir = self.root / "mcsv_melody"
        if not melody_dir.is_dir():
            raise missing_root_error(melody_dir, "WJazzD mcsv_melody", self.config_key)
        files = sorted(melody_dir.glob(f"*{MELODY_SUFFIX}"))
        return files if self.limit is None else files[: self.limit]

    def beat_file(self, melody_csv: Path) -> Path:
        stem = melody_csv.name.removesuffix(MELODY_SUFFIX)
        return self.root / "mcsv_beat" / f"{stem}{BEAT_SUFFIX}"

    def _settings(self) -> dict:
        return {"version": MANIFEST_VERSION, **self.conversion}

    def _usable(self, manifest: dict | None, names: list[str]) -> bool:
        if manifest is None:
            return False
        entries = {e["name"]: e for e in manifest["entries"]}
        return all(n in entries and (entries[n]["status"] != "written"
                                     or (self.midi_dir / entries[n]["file"]).is_file())
                   for n in names)

    def materialise(self) -> dict:
        """Convert the solos not yet in the manifest; return the manifest."""
        names = [p.name for p in self.melody_files()]
        manifest = read_manifest(self.manifest_path, self._settings())
        if self._usable(manifest, names):
            return manifest
        with cache_lock(self.midi_dir / ".lock"):
            manifest = read_manifest(self.manifest_path, self._settings())
            if self._usable(manifest, names):
                return manifest
            entries = {e["name"]: e for e in (manifest or {}).get("entries", [])}
            todo = [p for p in self.melody_files()
                    if not self._usable({"entries": list(entries.values())}, [p.name])]
            self.midi_dir.mkdir(parents=True, exist_ok=True)
            with make_progress(self.show_progress) as progress:
                task = progress.add_task("WJazzD -> MIDI", total=len(todo), now="")
                for melody_csv in todo:
                    progress.update(task, now=melody_csv.name.removesuffix(MELODY_SUFFIX))
                    entries[melody_csv.name] = self._convert_one(melody_csv)
                    progress.advance(task)
            manifest = {**self._settings(), "entries": sorted(entries.values(),
                                                              key=lambda e: e["name"])}
            write_manifest(self.manifest_path, manifest)
            done = [entries[n] for n in names]
            written = sum(e["status"] == "written" for e in done)
            log.info("WJazzD: %d written, %d skipped -> %s", written, len(done) - written,
                     self.midi_dir)
            return manifest

    def _convert_one(self, melody_csv: Path) -> dict:
        stem = melody_csv.name.removesuffix(MELODY_SUFFIX)
        entry = {"name": melody_csv.name, "file": f"{stem}.mid"}
        beat_csv = self.beat_file(melody_csv)
        has_beats = beat_csv.is_file()
        if not has_beats:
            log.info("WJazzD %s: no beat track, grid from the melody, no BASS", stem)
        try:
            score = convert_solo(melody_csv, beat_csv if has_beats else None,
                                 **{**self.conversion,
                                    "velocity_range": tuple(self.conversion["velocity_range"])})
        except SoloSkip as skip:
            log.warning("WJazzD %s skipped: %s", stem, skip)
            return {**entry, "status": "skipped", "reason": skip.reason, "detail": skip.detail}
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, KeyError) as err:
            log.warning("WJazzD %s skipped: unreadable CSV (%s)", stem, err)
            return {**entry, "status": "skipped", "reason": "unreadable_csv",
                    "detail": f"{type(err).__name__}: {err}"[:300]}
        names = [t.name for t in score.tracks]
        if has_beats and "BASS" not in names:
            log.info("WJazzD %s: beat track has no bass column, written without BASS", stem)
        atomic_dump_midi(score, self.midi_dir / entry["file"])
        return {**entry, "status": "written", "tracks": names, "beat_track": has_beats,
                "notes": len(score.tracks[0].notes)}

    def items(self) -> list[MidiItem]:
        names = {p.name for p in self.melody_files()}
        entries = [e for e in self.materialise()["entries"] if e["name"] in names]
        items = [MidiItem(self.midi_dir / e["file"],
                          wjazzd_piece_id(Path(e["file"]).stem, self.group_by), self.name)
                 for e in entries if e["status"] == "written"]
        return sorted(items, key=lambda item: item.path.name)
