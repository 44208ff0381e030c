"""PercePiano files -> items: names, pianist ids (the published mapping), labels, score files.

`<piece>_<N>bars_<player>_<segment>.mid`; the player token is second to last. One file name
starts with a space: names are stripped before matching labels.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LABEL_NAMES = (
    "Timing_Stable_Unstable", "Articulation_Long_Short", "Articulation_Soft_cushioned_Hard_solid",
    "Pedal_Sparse/dry_Saturated/wet", "Pedal_Clean_Blurred", "Timbre_Even_Colorful",
    "Timbre_Shallow_Rich", "Timbre_Bright_Dark", "Timbre_Soft_Loud",
    "Dynamic_Sophisticated/mellow_Raw/crude", "Dynamic_Little_dynamic_range_Large_dynamic_range",
    "Music_Making_Fast_paced_Slow_paced", "Music_Making_Flat_Spacious",
    "Music_Making_Disproportioned_Balanced", "Music_Making_Pure_Dramatic/expressive",
    "Emotion_&_Mood_Optimistic/pleasant_Dark", "Emotion_&_Mood_Low_Energy_High_Energy",
    "Emotion_&_Mood_Honest_Imaginative", "Interpretation_Unsatisfactory/doubtful_Convincing")
BEETHOVEN_PLAYERS = (1, 2, 3, 4, 7, 11, 14, 18, 19, 22, 24, 26)
LABEL_FILE = "labels/label_2round_mean_reg_19_with0_rm_highstd0.json"


@dataclass(frozen=True)
class PerfItem:
    path: Path          # the performance MIDI (the real name, spaces included)
    key: str            # stripped stem: the label key
    piece: str          # "<piece>_<N>bars", e.g. "Schubert_D960_mv3_8bars"
    segment: str        # segment number within the piece
    player: str         # the player token
    pianist: int        # published pianist id (Score -> 0, Score2 -> -1)

    @property
    def group(self) -> str:
        """The segment group: one score segment, played by every pianist."""
        return f"{self.piece}_{self.segment}"


def pianist_id(key: str) -> int:
    """Score -> 0, Score2 -> -1, Beethoven p -> index of p in BEETHOVEN_PLAYERS, Schubert -> int(p)."""
    player = key.split("_")[-2]
    if player == "Score":
        return 0
    if player == "Score2":
        return -1
    if key.startswith("Beethoven"):
        return BEETHOVEN_PLAYERS.index(int(player))
    return int(player)


def parse_item(path: Path) -> PerfItem:
    key = path.stem.strip()
    parts = key.split("_")
    if len(parts) < 4:
        raise ValueError(f"{path}: expected <piece>_<N>bars_<player>_<segment>.mid")
    return PerfItem(path, key, "_".join(parts[:-2]), parts[-1], parts[-2], pianist_id(key))


def score_paths(root: Path, item: PerfItem) -> tuple[list[Path], Path | None]:
    """Candidate score MIDI (Score first, Score2 as the fallback) and the MusicXML of a segment."""
    midis = [root / "score_midi" / f"{item.piece}_{tag}_{item.segment}.mid" for tag in ("Score", "Score2")]
    xmls = [root / "score_xml" / f"{item.piece}_{tag}_{item.segment}.musicxml" for tag in ("Score", "Score2")]
    return [m for m in midis if m.exists()], next((x for x in xmls if x.exists()), None)


def load_labels(root: Path) -> dict[str, list[float]]:
    """{stripped key: 19 label means}; the 20th value (a player number) is dropped."""
    path = root / LABEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: data.root must point at the percepiano folder "
                                "(with performances/, score_midi/, score_xml/, labels/)")
    raw = json.loads(path.read_text())
    return {k.strip(): [float(x) for x in v[:19]] for k, v in raw.items()}


def list_items(root: Path) -> list[PerfItem]:
    folder = root / "performances"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: pass data.root=<path to percepiano>")
    return sorted((parse_item(p) for p in folder.iterdir() if p.suffix.lower() == ".mid"), key=lambda i: i.key)
