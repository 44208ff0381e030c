"""Materialising non-MIDI corpora into a cache dir: atomic writes, a lock, manifests."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

import symusic

log = logging.getLogger(__name__)

CACHE_FILE_MODE = 0o644  # mkstemp makes 0600 files; a shared cache must stay readable


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, CACHE_FILE_MODE)
    os.replace(tmp, path)


def atomic_dump_midi(score: symusic.Score, path: Path) -> None:
    """Write to a temp file then rename, so readers never see a half-written MIDI file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mid.tmp")
    os.close(fd)
    try:
        score.dump_midi(tmp)
        os.chmod(tmp, CACHE_FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def cache_lock(lock_path: Path):
    """Exclusive lock so concurrent first uses materialise once; others wait, then reuse."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: atomic renames alone keep files whole
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(path: Path, expected: dict) -> dict | None:
    """The manifest at `path` if it exists and was made with the `expected` settings."""
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        log.warning("ignoring unreadable manifest %s (%s)", path, err)
        return None
    if any(manifest.get(k) != v for k, v in expected.items()):
        return None
    return manifest


def write_manifest(path: Path, manifest: dict) -> None:
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True))


def make_progress(enabled: bool = True):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[now]}"),
                    disable=not enabled)
