"""Score-side features: one row per score note, from the score MIDI joined with its MusicXML.

The score MIDI gives the notes, their staff (track), tempo and time signature; the MusicXML
(parsed by music21, slow, hence cached on disk) adds voice, dynamics, wedges, articulations,
slurs, fermatas and ornaments. Notes are joined on (pitch, onset in quarters).
"""
from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datamodules.midi_io import load_score

log = logging.getLogger(__name__)

XML_CACHE_VERSION = 1
ARTICULATIONS = ("staccato", "staccatissimo", "accent", "strong_accent", "tenuto")
XML_COLUMNS = ("voice", "dynamic", "crescendo", "diminuendo", *ARTICULATIONS, "fermata",
               "ornament", "in_slur", "slur_start", "slur_end", "is_grace")
SCORE_COLUMNS = ("s_pitch", "s_onset", "s_duration", "beat_in_measure", "measure_index", "beat_index",
                 "staff", "ts_numerator", "ts_denominator", "s_tempo", "xml_matched",
                 *XML_COLUMNS)
DEFAULT_DYNAMIC = 0.5  # music21 volumeScalar of "mf" region when a score marks nothing


@dataclass
class ScoreNotes:
    """Score notes sorted by (onset, pitch); onsets/durations in quarter notes from the segment start."""
    pitch: np.ndarray     # (S,) int
    onset: np.ndarray     # (S,) quarters
    duration: np.ndarray  # (S,) quarters (0 for grace notes in the score MIDI)
    staff: np.ndarray     # (S,) int, score MIDI track index
    measure: np.ndarray   # (S,) int, measure index from the segment start
    beat: np.ndarray      # (S,) int, global beat index from the segment start
    beat_in_measure: np.ndarray  # (S,) float in [0, 1): position of the onset inside its measure
    ts: np.ndarray        # (S, 2) numerator, denominator
    tempo: np.ndarray     # (S,) qpm of the score MIDI at the onset
    xml: np.ndarray       # (S, len(XML_COLUMNS)) MusicXML attributes (zeros where unmatched)
    xml_matched: np.ndarray  # (S,) bool
    voice_index: np.ndarray = field(default=None)  # (S,) int: staff * max_voices + voice - 1

    def __len__(self) -> int:
        return len(self.pitch)

    def matrix(self) -> np.ndarray:
        """(S, len(SCORE_COLUMNS)) float32 in SCORE_COLUMNS order."""
        base = np.stack([self.pitch, self.onset, self.duration, self.beat_in_measure, self.measure,
                         self.beat, self.staff, self.ts[:, 0], self.ts[:, 1], self.tempo,
                         self.xml_matched], axis=1)
        return np.concatenate([base, self.xml], axis=1).astype(np.float32)


def beat_length(numerator: int, denominator: int) -> float:
    """A beat in quarters: the denominator's unit, or a dotted unit in compound meters (6/8, 9/8...)."""
    unit = 4.0 / denominator
    return unit * 3 if numerator % 3 == 0 and numerator > 3 and denominator >= 8 else unit


def metric_grid(onsets: np.ndarray, ts_events: list[tuple[float, int, int]], end: float):
    """(measure index, beat index, position in measure in [0,1), (num, den)) per onset in quarters."""
    ts_events = sorted(ts_events) or [(0.0, 4, 4)]
    if ts_events[0][0] > 0:
        ts_events.insert(0, (0.0, ts_events[0][1], ts_events[0][2]))
    bars = []  # (start, length, num, den, first beat index)
    beat_count = 0
    for i, (start, num, den) in enumerate(ts_events):
        stop = ts_events[i + 1][0] if i + 1 < len(ts_events) else max(end, start) + 1e-6
        bar_len = num * 4.0 / den
        t = start
        while t < stop - 1e-9:
            bars.append((t, bar_len, num, den, beat_count))
            beat_count += max(1, int(round(bar_len / beat_length(num, den))))
            t += bar_len
    starts = np.array([b[0] for b in bars])
    bar = np.clip(np.searchsorted(starts, onsets + 1e-6, side="right") - 1, 0, len(bars) - 1)
    measure, beat, pos, ts = [], [], [], []
    for o, b in zip(onsets, bar):
        start, bar_len, num, den, first_beat = bars[b]
        within = o - start
        measure.append(b)
        beat.append(first_beat + int(np.floor(within / beat_length(num, den) + 1e-6)))
        pos.append(min(max(within / bar_len, 0.0), 0.999))
        ts.append((num, den))
    return (np.asarray(measure, dtype=np.int64), np.asarray(beat, dtype=np.int64),
            np.asarray(pos, dtype=np.float64), np.asarray(ts, dtype=np.float64).reshape(-1, 2))


def read_score_midi(path: Path | str) -> dict:
    """Notes (pitch, onset q, duration q, staff) + tempo map and time signatures of a score MIDI."""
    score = load_score(path)
    tpq = float(score.tpq)
    rows = [(n.time / tpq, n.pitch, n.duration / tpq, staff)
            for staff, track in enumerate(t for t in score.tracks if not t.is_drum) for n in track.notes]
    rows.sort()
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    tempos = sorted((t.time / tpq, t.qpm) for t in score.tempos) or [(0.0, 120.0)]
    ts = [(t.time / tpq, t.numerator, t.denominator) for t in score.time_signatures]
    return {"notes": arr, "tempos": tempos, "ts": ts, "end": score.end() / tpq}


def _xml_rows(xml_path: Path) -> list[tuple]:
    """(pitch, onset q, staff, voice, *attributes) per MusicXML note (ties merged)."""
    import warnings

    import music21

    with warnings.catch_warnings():  # overfull measures, dangling <dashes>: music21 copes, we log nothing
        warnings.simplefilter("ignore")
        score = music21.converter.parse(str(xml_path)).stripTies()
    dyn_times, dyn_values = [], []
    for d in score.recurse().getElementsByClass("Dynamic"):
        if d.volumeScalar is not None:
            dyn_times.append(float(d.getOffsetInHierarchy(score)))
            dyn_values.append(float(d.volumeScalar))
    order = np.argsort(dyn_times)
    dyn_times, dyn_values = np.asarray(dyn_times)[order], np.asarray(dyn_values)[order]

    def spans(kind: str) -> list[tuple[float, float, set]]:
        out = []
        for sp in score.spannerBundle.getByClass(kind):
            els = [e for e in sp.getSpannedElements() if e.activeSite is not None]
            if els:
                offs = [float(e.getOffsetInHierarchy(score)) for e in els]
                out.append((min(offs), max(offs) + float(els[-1].quarterLength), {id(e) for e in els}))
        return out

    cresc, dim, slurs = spans("Crescendo"), spans("Diminuendo"), spans("Slur")
    rows = []
    for staff, part in enumerate(score.parts):
        for el in part.recurse().notes:
            onset = float(el.getOffsetInHierarchy(score))
            voice_site = el.getContextByClass("Voice")
            voice = int(voice_site.id) if voice_site is not None and str(voice_site.id).isdigit() else 1
            arts = {type(a).__name__.lower() for a in el.articulations}
            arts = {"strong_accent" if a == "strongaccent" else a for a in arts}
            exprs = {type(e).__name__.lower() for e in el.expressions}
            k = np.searchsorted(dyn_times, onset + 1e-6, side="right") - 1
            dynamic = dyn_values[k] if k >= 0 else DEFAULT_DYNAMIC
            in_span = lambda ss: float(any(a - 1e-6 <= onset <= b + 1e-6 for a, b, _ in ss))
            first_of = any(abs(a - onset) < 1e-6 for a, _, ids in slurs if id(el) in ids)
            last_of = any(abs(b - onset - float(el.quarterLength)) < 1e-6 for _, b, ids in slurs if id(el) in ids)
            attrs = [voice, dynamic, in_span(cresc), in_span(dim),
                     *(float(a in arts) for a in ARTICULATIONS), float("fermata" in exprs),
                     float(bool(exprs & {"trill", "mordent", "invertedmordent", "turn", "invertedturn",
                                         "tremolo"})),
                     in_span(slurs), float(first_of), float(last_of), float(el.duration.isGrace)]
            for p in el.pitches:
                rows.append((int(p.midi), onset, staff, *attrs))
    return rows


class XmlCache:
    """music21 parses are slow (~0.5 s a file): cache rows per MusicXML by content hash."""

    def __init__(self, cache_dir: Path | str):
        self.dir = Path(cache_dir) / f"percepiano_xml_v{XML_CACHE_VERSION}"
        self.hits = self.misses = 0

    def rows(self, xml_path: Path | str) -> list[tuple]:
        xml_path = Path(xml_path)
        key = hashlib.sha1(xml_path.read_bytes()).hexdigest()
        cached = self.dir / f"{key}.pkl"
        if cached.exists():
            self.hits += 1
            return pickle.loads(cached.read_bytes())
        self.misses += 1
        rows = _xml_rows(xml_path)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(rows))
        tmp.replace(cached)
        return rows


def xml_shift(notes: np.ndarray, by_pitch: dict[int, list[tuple]]) -> float:
    """The constant offset (quarters) from score-MIDI time to MusicXML time: the most common
    same-pitch onset difference (some exports start the MIDI at a pickup or drop a bar)."""
    diffs = [round((r[1] - onset) * 48) for onset, pitch, *_ in notes[:64] for r in by_pitch.get(int(pitch), [])]
    if not diffs:
        return 0.0
    values, counts = np.unique(diffs, return_counts=True)
    best = values[counts == counts.max()]
    return float(best[np.argmin(np.abs(best))]) / 48  # ties: the smallest shift


def join_xml(notes: np.ndarray, xml_rows: list[tuple], tolerance: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Attach each score-MIDI note the attributes of the unused MusicXML note of the same pitch
    and nearest onset (within `tolerance` quarters, grace notes within a quarter)."""
    attrs = np.zeros((len(notes), len(XML_COLUMNS)))
    matched = np.zeros(len(notes), dtype=bool)
    by_pitch: dict[int, list[tuple]] = {}
    for r in xml_rows:
        by_pitch.setdefault(r[0], []).append(r)
    shift = xml_shift(notes, by_pitch)
    used = set()
    for i, (onset, pitch, duration, _staff) in enumerate(notes):
        onset = onset + shift
        cands = [(abs(r[1] - onset), id(r), r) for r in by_pitch.get(int(pitch), []) if id(r) not in used]
        if not cands:
            continue
        dist, rid, row = min(cands, key=lambda c: c[0])
        if dist <= tolerance or (row[-1] and dist <= 1.0):
            used.add(rid)
            matched[i] = True
            attrs[i] = row[3:]
    attrs[~matched, 0] = 1  # voice 1, default dynamic where the MusicXML had no such note
    attrs[~matched, 1] = DEFAULT_DYNAMIC
    return attrs, matched


def score_notes(midi_path: Path | str, xml_path: Path | str | None, xml_cache: XmlCache | None,
                max_voices: int = 4) -> ScoreNotes:
    """Score features for one segment; the MusicXML is optional (attributes then default)."""
    midi = read_score_midi(midi_path)
    notes = midi["notes"]
    onset, pitch, duration, staff = notes[:, 0], notes[:, 1], notes[:, 2], notes[:, 3]
    measure, beat, pos, ts = metric_grid(onset, midi["ts"], midi["end"])
    tempo_times = np.array([t for t, _ in midi["tempos"]])
    tempo = np.array([q for _, q in midi["tempos"]])[np.clip(np.searchsorted(tempo_times, onset + 1e-6,
                                                                             side="right") - 1, 0, None)]
    rows = xml_cache.rows(xml_path) if xml_cache is not None and xml_path and Path(xml_path).exists() else \
        (_xml_rows(Path(xml_path)) if xml_path and Path(xml_path).exists() else [])
    xml, matched = join_xml(notes, rows)
    voice = (np.maximum(xml[:, 0].astype(np.int64), 1) - 1) % max_voices + 1  # MusicXML numbers staff 2's voices 5-8
    return ScoreNotes(pitch.astype(np.int64), onset, duration, staff.astype(np.int64), measure, beat, pos, ts,
                      tempo, xml, matched, voice_index=staff.astype(np.int64) * max_voices + voice - 1)
