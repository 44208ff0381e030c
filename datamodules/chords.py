"""Chord symbols of the two annotated data sets, parsed into one canonical form.

POP909 uses Harte syntax (`B:maj7`, `C#:min`, `G:sus4(b7)`, `C:maj/3`, `N`); WJazzD uses
jazz lead-sheet shorthand (`Bb6`, `C-7`, `F7alt`, `Ebj7`, `Bbm7b5`, `D79#`, `C/E`, `NC`).
Both parse to `Chord(root, quality, bass)` with `quality` a key of CHORD_QUALITIES.
Extensions the table does not name reduce to the largest canonical chord they contain
(e.g. `A79b13` -> 7b9), so parsing never fails on a real label.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Canonical quality -> semitone intervals from the root, in stacking order (thirds), so a
# root-position voicing is read straight off the tuple. Tensions sit above the octave.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "5": (0, 7),
    "6": (0, 4, 7, 9),
    "min6": (0, 3, 7, 9),
    "69": (0, 4, 7, 9, 14),
    "min69": (0, 3, 7, 9, 14),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "minmaj7": (0, 3, 7, 11),
    "dim7": (0, 3, 6, 9),
    "hdim7": (0, 3, 6, 10),
    "aug7": (0, 4, 8, 10),
    "augmaj7": (0, 4, 8, 11),
    "7sus4": (0, 5, 7, 10),
    "9": (0, 4, 7, 10, 14),
    "maj9": (0, 4, 7, 11, 14),
    "min9": (0, 3, 7, 10, 14),
    "minmaj9": (0, 3, 7, 11, 14),
    "9sus4": (0, 5, 7, 10, 14),
    "7b9": (0, 4, 7, 10, 13),
    "7#9": (0, 4, 7, 10, 15),
    "7#11": (0, 4, 7, 10, 18),
    "maj7#11": (0, 4, 7, 11, 18),
    "7b13": (0, 4, 7, 10, 20),
    "7alt": (0, 4, 10, 15, 20),  # altered dominant: no fifth, #9 and b13 as the colour tones
    "9#11": (0, 4, 7, 10, 14, 18),
    "maj9#11": (0, 4, 7, 11, 14, 18),
    "11": (0, 4, 7, 10, 14, 17),
    "min11": (0, 3, 7, 10, 14, 17),
    "13": (0, 4, 7, 10, 14, 21),
    "min13": (0, 3, 7, 10, 14, 21),
    "maj13": (0, 4, 7, 11, 14, 21),
}

NO_CHORD_LABELS = frozenset({"N", "NC", "N.C.", "X", "", "nan", "None"})

_NOTE_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_DEGREE_SEMITONES = {1: 0, 2: 2, 3: 4, 4: 5, 5: 7, 6: 9, 7: 11, 9: 14, 11: 17, 13: 21}
_QUALITY_SETS = {name: frozenset(iv) for name, iv in CHORD_QUALITIES.items()}
_already_logged: set[str] = set()


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class 0-11
    quality: str  # key of CHORD_QUALITIES
    bass: int | None = None  # pitch class of a bass other than the root (slash chord)

    def pitch_classes(self) -> frozenset[int]:
        pcs = {(self.root + i) % 12 for i in CHORD_QUALITIES[self.quality]}
        if self.bass is not None:
            pcs.add(self.bass)
        return frozenset(pcs)

    def __str__(self) -> str:
        names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        slash = f"/{names[self.bass]}" if self.bass is not None else ""
        return f"{names[self.root]}:{self.quality}{slash}"


def _note_pc(name: str) -> int:
    """`Bb`, `C#`, `Cb`, `F##` -> pitch class."""
    pc = _NOTE_PC[name[0].upper()]
    for accidental in name[1:]:
        pc += 1 if accidental == "#" else -1
    return pc % 12


def _degree_semitones(degree: str) -> int:
    """Harte degree (`b7`, `#4`, `9`) -> semitones above the root."""
    match = re.fullmatch(r"([b#]*)(\d+)", degree)
    if match is None:
        raise ValueError(f"bad degree {degree!r}")
    number = int(match.group(2))
    base = _DEGREE_SEMITONES.get(number)
    if base is None:  # 8, 10, 12, ...: fold into the octave range above
        base = 12 + _DEGREE_SEMITONES[(number - 1) % 7 + 1]
    return base + match.group(1).count("#") - match.group(1).count("b")


def _nearest_quality(intervals: set[int]) -> str:
    """Exact canonical match, else the largest canonical chord contained in `intervals`."""
    wanted = frozenset(intervals)
    best, best_size = "maj", -1
    for name, members in _QUALITY_SETS.items():
        if members == wanted:
            return name
        if members <= wanted and len(members) > best_size:
            best, best_size = name, len(members)
    if best_size < 0:  # nothing fits (e.g. a lone root): compare within the octave
        folded = {i % 12 for i in intervals}
        best = max(_QUALITY_SETS, key=lambda n: len({i % 12 for i in _QUALITY_SETS[n]} & folded))
    return best


def _make_chord(root: int, quality: str, bass: int | None) -> Chord:
    return Chord(root=root, quality=quality, bass=None if bass == root else bass)


def _log_unparseable(label: str, fmt: str) -> None:
    if label not in _already_logged:
        _already_logged.add(label)
        log.debug("unparseable %s chord label %r: treated as no chord", fmt, label)


# Harte shorthand -> intervals. POP909 writes `maj6`; plain `C` (no colon) means major.
_HARTE_SHORTHANDS: dict[str, tuple[int, ...]] = {
    **{name: CHORD_QUALITIES[name] for name in ("maj", "min", "dim", "aug", "sus2", "sus4",
                                                "7", "maj7", "min7", "minmaj7", "dim7",
                                                "hdim7", "9", "maj9", "min9", "11",
                                                "min11", "13", "min13", "maj13", "5", "min6")},
    "maj6": CHORD_QUALITIES["6"],
    "6": CHORD_QUALITIES["6"],
    "1": (0,),
}
_HARTE = re.compile(r"([A-G][#b]*)(?::([a-z0-9]*)(?:\(([^)]*)\))?)?(?:/([b#]*\d+))?")


def parse_pop909_chord(label: str) -> Chord | None:
    """Harte-syntax label (`C#:min7/b7`, `G:sus4(b7)`) -> Chord; None for `N`/`X`/junk."""
    label = str(label).strip()
    if label in NO_CHORD_LABELS:
        return None
    match = _HARTE.fullmatch(label)
    if match is None:
        _log_unparseable(label, "POP909")
        return None
    root_name, shorthand, components, bass_degree = match.groups()
    if shorthand is None or shorthand == "":
        shorthand = "maj" if components is None else "1"
    if shorthand not in _HARTE_SHORTHANDS:
        _log_unparseable(label, "POP909")
        return None
    root = _note_pc(root_name)
    intervals = set(_HARTE_SHORTHANDS[shorthand])
    try:
        for component in (components or "").split(","):
            component = component.strip()
            if not component:
                continue
            if component.startswith("*"):  # Harte "omit this degree"
                intervals.discard(_degree_semitones(component[1:]))
            else:
                intervals.add(_degree_semitones(component))
        bass = (root + _degree_semitones(bass_degree)) % 12 if bass_degree else None
    except (ValueError, KeyError):
        _log_unparseable(label, "POP909")
        return None
    return _make_chord(root, _nearest_quality(intervals), bass)


# WJazzD: root, triad marker, `j` (major seventh), 6/7, tensions (9|11|13 with a trailing
# accidental, e.g. `9b`, `11#`), `alt`, then `/bass` as a note name.
_WJAZZD = re.compile(
    r"([A-G][#b]?)(m7b5|sus|-|\+|o)?(j)?(6|7)?((?:(?:9|11|13)[#b]?)*)(alt)?(?:/([A-G][#b]?))?"
)
_WJAZZD_TRIADS = {
    None: (0, 4, 7), "-": (0, 3, 7), "+": (0, 4, 8), "o": (0, 3, 6),
    "sus": (0, 5, 7), "m7b5": (0, 3, 6, 10),
}
_WJAZZD_TENSIONS = {"9": 14, "11": 17, "13": 21}


def parse_wjazzd_chord(label: str) -> Chord | None:
    """Lead-sheet label (`Bbm7b5`, `F-7/Bb`, `D79#`, `Ebj7911#`) -> Chord; None for `NC`."""
    label = str(label).strip()
    if label in NO_CHORD_LABELS:
        return None
    match = _WJAZZD.fullmatch(label)
    if match is None:
        _log_unparseable(label, "WJazzD")
        return None
    root_name, triad, major_seventh, sixth_or_seventh, tensions, alt, bass_name = match.groups()
    root = _note_pc(root_name)
    bass = _note_pc(bass_name) if bass_name else None
    if alt:
        return _make_chord(root, "7alt", bass)
    intervals = set(_WJAZZD_TRIADS[triad])
    if sixth_or_seventh == "6":
        intervals.add(9)
    elif sixth_or_seventh == "7" or major_seventh:
        if major_seventh:
            intervals.add(11)
        elif triad == "o":
            intervals.add(9)  # `o7` is the fully diminished seventh
        elif triad != "m7b5":
            intervals.add(10)
    for number, accidental in re.findall(r"(9|11|13)([#b]?)", tensions or ""):
        shift = {"#": 1, "b": -1, "": 0}[accidental]
        intervals.add(_WJAZZD_TENSIONS[number] + shift)
    return _make_chord(root, _nearest_quality(intervals), bass)


def parse_chord(label: str) -> Chord | None:
    """Either format: a colon means POP909/Harte, anything else WJazzD shorthand."""
    label = str(label).strip()
    if label in NO_CHORD_LABELS:
        return None
    return parse_pop909_chord(label) if ":" in label else parse_wjazzd_chord(label)


def voice_chord(chord: Chord, low: int = 48) -> list[int]:
    """MIDI pitches of a close block voicing whose lowest note is the first one >= `low`.

    Root position stacks the quality's intervals in order (thirds, tensions on top); a
    slash chord puts the bass lowest and the other tones in close position above it.
    """
    intervals = CHORD_QUALITIES[chord.quality]
    if chord.bass is None:
        bottom_pc = chord.root
        upper_pcs = [(chord.root + i) % 12 for i in intervals[1:]]
    else:
        bottom_pc = chord.bass
        tones = {(chord.root + i) % 12 for i in intervals} - {chord.bass}
        upper_pcs = sorted(tones, key=lambda pc: (pc - chord.bass) % 12)
    pitch = low + (bottom_pc - low) % 12
    pitches = [pitch]
    for pc in upper_pcs:
        pitch = pitch + 1 + (pc - pitch - 1) % 12  # next pitch strictly above with this pc
        pitches.append(pitch)
    return [p for p in pitches if 0 <= p <= 127]
