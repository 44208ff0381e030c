"""Bach chorales shipped with music21: the embedded default data set, needs no download.

Each chorale is materialised once to `<cache_dir>/chorales_midi/<bwv>.mid` (4 tracks:
Soprano, Alto, Tenor, Bass; tpq 480; repeats expanded) and recorded in a manifest.
Later calls read the manifest and never touch music21.
"""
from __future__ import annotations

import logging
from pathlib import Path

import symusic

from datamodules.sources.base import MidiItem
from datamodules.sources.cache import (atomic_dump_midi, cache_lock, make_progress, read_manifest,
                                       write_manifest)

log = logging.getLogger(__name__)

VOICES = ("Soprano", "Alto", "Tenor", "Bass")
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1  # bump when the MIDI rendering changes, so old caches are rebuilt


class ChoraleSkip(Exception):
    """A chorale that cannot be rendered to SATB MIDI, with a stable reason string."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def list_chorales() -> list[str]:
    """Corpus names (`bach/bwv269`) of the 371 Riemenschneider chorales, duplicates dropped."""
    from music21 import corpus

    names = corpus.chorales.Iterator(returnType="filename")
    return list(dict.fromkeys(str(name) for name in names))


def _pick_voices(score) -> list:
    """The four SATB parts, by part name (instrumental doublings ignored), else by position."""
    parts = list(score.parts)
    chosen = []
    for voice in VOICES:
        match = next((p for p in parts if (p.partName or "").lower().startswith(voice.lower())),
                     None)
        chosen.append(match)
    if all(chosen):
        return chosen
    if len(parts) == 4 and not any(p.partName for p in parts):
        return parts
    names = [p.partName for p in parts]
    raise ChoraleSkip("no_satb_parts", f"parts {names}")


def _tied_notes(part, tick) -> list[tuple[int, int, int]]:
    """(start, end, pitch) with tied notes merged; music21's stripTies is much slower."""
    merged, open_ties = [], {}
    for element in part.flatten().notes:
        start = tick(element.offset)
        end = tick(element.offset + element.quarterLength)
        if end <= start:  # grace notes carry no duration
            continue
        for note in (element.notes if element.isChord else [element]):
            pitch = note.pitch.midi
            tie = note.tie.type if note.tie is not None else None
            if tie in ("stop", "continue") and pitch in open_ties:
                open_ties[pitch][1] = end
                if tie == "stop":
                    merged.append(tuple(open_ties.pop(pitch)))
            elif tie in ("start", "continue"):
                open_ties[pitch] = [start, end, pitch]
            else:
                merged.append((start, end, pitch))
    merged.extend(tuple(v) for v in open_ties.values())  # ties left open at the end
    return merged


def chorale_to_score(corpus_name: str, qpm: float = 90.0, tpq: int = 480) -> symusic.Score:
    """Parse one corpus chorale and render its SATB parts as a 4-track symusic Score."""
    from music21 import bar, corpus, key, repeat

    m21_score = corpus.parse(corpus_name)
    voices = _pick_voices(m21_score)
    repeat_marks = (bar.Repeat, repeat.RepeatExpression)
    if any(True for _ in voices[0].recurse().getElementsByClass(repeat_marks)):
        try:  # expanding is slow, so only where there is something to expand
            voices = [voice.expandRepeats() for voice in voices]
        except repeat.ExpanderException as err:
            raise ChoraleSkip("repeat_expansion_failed", str(err)) from err

    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, qpm))
    first_measure = voices[0].getElementsByClass("Measure").first()
    # A pickup bar is stored unpadded; shifting by its padding puts bar lines on the grid.
    pickup_shift = float(first_measure.paddingLeft) if first_measure is not None else 0.0

    def tick(quarters: float) -> int:
        return round((float(quarters) + pickup_shift) * tpq)

    # Expanded repeats restate the signatures of repeated bars: keep only real changes.
    soprano_flat = voices[0].flatten()
    meter = None
    for ts in soprano_flat.getElementsByClass("TimeSignature"):
        if (ts.numerator, ts.denominator) != meter:
            meter = (ts.numerator, ts.denominator)
            time = 0 if ts.offset == 0 else tick(ts.offset)
            score.time_signatures.append(symusic.TimeSignature(time, *meter))
    signature = None
    for ks in soprano_flat.getElementsByClass("KeySignature"):
        minor = isinstance(ks, key.Key) and ks.mode == "minor"
        if (ks.sharps, minor) != signature:
            signature = (ks.sharps, minor)
            time = 0 if ks.offset == 0 else tick(ks.offset)
            score.key_signatures.append(symusic.KeySignature(time, ks.sharps, int(minor)))

    for voice_name, part in zip(VOICES, voices):
        track = symusic.Track(voice_name, 52, False)  # GM 52: choir aahs
        for start, end, pitch in _tied_notes(part, tick):
            track.notes.append(symusic.Note(start, end - start, pitch, 80))
        track.notes.sort()
        score.tracks.append(track)
    if score.note_num() == 0:
        raise ChoraleSkip("no_notes")
    return score


class ChoraleSource:
    """Bach chorales from the music21 corpus, as SATB MIDI files in a cache dir.

    limit: materialise/list only the first `limit` chorales (corpus order), e.g. in tests.
    qpm: tempo written into the files (the corpus has no tempo marks).
    """

    name = "chorales"

    def __init__(self, cache_dir: str | Path, limit: int | None = None, qpm: float = 90.0,
                 show_progress: bool = True):
        if limit is not None and limit < 1:
            raise ValueError(f"chorales limit must be a positive number or None, got {limit}")
        self.cache_dir = Path(cache_dir).expanduser()
        if self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise NotADirectoryError(f"chorales cache_dir is a file, not a folder: "
                                     f"{self.cache_dir} (set `paths.cache_dir=...`)")
        self.limit = limit
        self.qpm = qpm
        self.show_progress = show_progress
        self.midi_dir = self.cache_dir / "chorales_midi"
        self.manifest_path = self.midi_dir / MANIFEST_NAME

    def _settings(self) -> dict:
        return {"version": MANIFEST_VERSION, "qpm": self.qpm}

    def _usable(self, manifest: dict | None) -> bool:
        """The manifest covers this request and every file it lists is still there."""
        if manifest is None:
            return False
        entries = manifest["entries"]
        enough = manifest["complete"] or (self.limit is not None and len(entries) >= self.limit)
        wanted = entries if self.limit is None else entries[: self.limit]
        return enough and all((self.midi_dir / e["file"]).is_file()
                              for e in wanted if e["status"] == "written")

    def materialise(self) -> dict:
        """Render missing chorales; return the manifest. No music21 work when cached."""
        manifest = read_manifest(self.manifest_path, self._settings())
        if self._usable(manifest):
            return manifest
        with cache_lock(self.midi_dir / ".lock"):
            manifest = read_manifest(self.manifest_path, self._settings())
            if self._usable(manifest):  # another process finished while we waited
                return manifest
            return self._render(manifest)

    def _render(self, old: dict | None) -> dict:
        names = list_chorales()
        todo = names if self.limit is None else names[: self.limit]
        done = {e["name"]: e for e in (old or {}).get("entries", [])}
        entries: list[dict] = []
        with make_progress(self.show_progress) as progress:
            task = progress.add_task("chorales -> MIDI", total=len(todo), now="")
            for corpus_name in todo:
                progress.update(task, now=corpus_name)
                entry = done.get(corpus_name)
                if entry is None or (entry["status"] == "written"
                                     and not (self.midi_dir / entry["file"]).is_file()):
                    entry = self._render_one(corpus_name)
                entries.append(entry)
                progress.advance(task)
        complete = len(todo) == len(names)
        if old and not complete and len(old["entries"]) > len(entries):
            entries += old["entries"][len(entries):]  # keep a bigger earlier run's entries
            complete = old["complete"]
        manifest = {**self._settings(), "complete": complete, "entries": entries}
        write_manifest(self.manifest_path, manifest)
        written = sum(e["status"] == "written" for e in entries)
        log.info("chorales: %d written, %d skipped -> %s", written, len(entries) - written,
                 self.midi_dir)
        return manifest

    def _render_one(self, corpus_name: str) -> dict:
        piece_id = corpus_name.rsplit("/", 1)[-1]
        entry = {"name": corpus_name, "piece_id": piece_id, "file": f"{piece_id}.mid"}
        try:
            score = chorale_to_score(corpus_name, qpm=self.qpm)
        except ChoraleSkip as skip:
            log.warning("chorale %s skipped: %s", corpus_name, skip)
            return {**entry, "status": "skipped", "reason": skip.reason, "detail": skip.detail}
        self.midi_dir.mkdir(parents=True, exist_ok=True)
        atomic_dump_midi(score, self.midi_dir / entry["file"])
        return {**entry, "status": "written", "notes": score.note_num()}

    def items(self) -> list[MidiItem]:
        entries = self.materialise()["entries"]
        if self.limit is not None:
            entries = entries[: self.limit]
        items = [MidiItem(self.midi_dir / e["file"], e["piece_id"], self.name)
                 for e in entries if e["status"] == "written"]
        return sorted(items, key=lambda item: item.path.name)
