"""What every data source hands to the data layer: MIDI files on disk, grouped by piece."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class MidiItem:
    path: Path  # a MIDI file on disk (real, or materialised into a cache dir)
    piece_id: str  # split key: every version of one piece shares it, so splits never leak
    source: str  # "chorales" | "pop909" | "wjazzd" | "folder" | ...


class MidiSource(Protocol):
    """A data source lists its MIDI items in a deterministic (sorted) order.

    Sources whose raw data is not MIDI (music21 corpus, WJazzD CSV) materialise MIDI files
    once into a cache dir and reuse them afterwards.
    """

    name: str

    def items(self) -> list[MidiItem]: ...
