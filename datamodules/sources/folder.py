"""Any folder of MIDI files (a user's own collection), searched recursively."""
from __future__ import annotations

from pathlib import Path

from datamodules.sources.base import MidiItem

DEFAULT_EXTENSIONS = (".mid", ".midi", ".smf", ".kar")


def missing_root_error(root: Path, what: str, config_key: str = "data.root") -> FileNotFoundError:
    """The error every source raises for a missing data folder: says which key to fix."""
    return FileNotFoundError(
        f"{what} folder not found: {root} (absolute: {root.absolute()}). "
        f"Point the config at it, e.g. `{config_key}=/path/to/folder` on the command line."
    )


class MidiFolderSource:
    """Every MIDI file under `root` matching `pattern`, in sorted path order.

    extensions: matched case-insensitively (`.MID`, `.Midi` count).
    piece_id_from: "stem" (file name without extension, whitespace stripped) or "parent"
        (name of the containing folder, for collections with one folder per piece).
    """

    name = "folder"

    def __init__(self, root: str | Path, pattern: str = "**/*",
                 extensions: tuple[str, ...] | list[str] = DEFAULT_EXTENSIONS,
                 piece_id_from: str = "stem", config_key: str = "data.root"):
        if piece_id_from not in ("stem", "parent"):
            raise ValueError(f"piece_id_from must be 'stem' or 'parent', got {piece_id_from!r}")
        self.root = Path(root).expanduser()
        self.pattern = pattern
        self.extensions = frozenset(ext.lower() for ext in extensions)
        self.piece_id_from = piece_id_from
        self.config_key = config_key

    def _piece_id(self, path: Path) -> str:
        raw = path.stem if self.piece_id_from == "stem" else path.parent.name
        return raw.strip()

    def items(self) -> list[MidiItem]:
        if not self.root.is_dir():
            raise missing_root_error(self.root, "MIDI", self.config_key)
        paths = sorted(p for p in self.root.glob(self.pattern)
                       if p.suffix.lower() in self.extensions and p.is_file())
        return [MidiItem(p, self._piece_id(p), self.name) for p in paths]
