"""On-disk token cache: one memory-mapped id file per tokenizer, keyed by file content hash.

Layout under `<cache_dir>/tokens-<tokenizer hash>/`:
  tokenizer.json   the tokenizer that made the ids
  tokens.bin       int32 ids of every file, back to back (memory-mapped when read)
  index.json       {content_sha1: {"offset", "length"} or {"skip": reason}}
A second build over the same files hashes them and tokenizes nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import miditok
import numpy as np
from rich.progress import Progress

from datamodules.midi_io import MidiSkip, NO_NOTES, load_score
from datamodules.sources.base import MidiItem
from datamodules.tokenizer import encode_score, tokenizer_hash

log = logging.getLogger(__name__)
DTYPE = np.int32


def file_sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


@dataclass
class CachedFile:
    item: MidiItem
    offset: int
    length: int


@dataclass
class CacheReport:
    files: list[CachedFile] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, detail)
    tokenized: int = 0  # files tokenized in this build (0 on a warm cache)
    cache_hits: int = 0

    def summary(self) -> dict:
        return {
            "read": len(self.files),
            "skipped": len(self.skipped),
            "skipped_by_reason": dict(Counter(r for _, r, _ in self.skipped)),
            "tokenized_now": self.tokenized,
            "cache_hits": self.cache_hits,
            "tokens": int(sum(f.length for f in self.files)),
            "skips": [{"path": p, "reason": r, "detail": d} for p, r, d in self.skipped],
        }


class TokenCache:
    def __init__(self, cache_dir: Path | str, tokenizer: miditok.MusicTokenizer,
                 max_seconds: float = 3600.0, flush_every: int = 200):
        self.tokenizer = tokenizer
        self.dir = Path(cache_dir) / f"tokens-{tokenizer_hash(tokenizer)}"
        self.max_seconds, self.flush_every = max_seconds, flush_every
        self.tokens_path, self.index_path = self.dir / "tokens.bin", self.dir / "index.json"

    def _load_index(self) -> dict:
        if not self.index_path.exists():
            return {}
        index = json.loads(self.index_path.read_text())
        # ids appended after the last saved index (an interrupted build) are garbage: cut them
        end = max((e["offset"] + e["length"] for e in index.values() if "offset" in e), default=0)
        if self.tokens_path.exists() and self.tokens_path.stat().st_size > end * DTYPE().itemsize:
            with open(self.tokens_path, "r+b") as f:
                f.truncate(end * DTYPE().itemsize)
        return index

    def _save_index(self, index: dict) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index))
        os.replace(tmp, self.index_path)

    def build(self, items: list[MidiItem], progress: bool = True) -> CacheReport:
        """Tokenize every item not yet cached; return where each file's ids live."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "tokenizer.json").exists():
            self.tokenizer.save(self.dir)
        index, report = self._load_index(), CacheReport()
        offset = self.tokens_path.stat().st_size // DTYPE().itemsize if self.tokens_path.exists() else 0
        with open(self.tokens_path, "ab") as out, Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"tokenizing -> {self.dir.name}", total=len(items))
            for n, item in enumerate(items):
                bar.advance(task)
                try:
                    key = file_sha1(item.path)
                except OSError as err:
                    report.skipped.append((str(item.path), "missing", str(err)))
                    continue
                entry = index.get(key)
                if entry is None:
                    entry = index[key] = self._tokenize(item, out, offset)
                    offset += entry.get("length", 0)
                    report.tokenized += 1
                    if report.tokenized % self.flush_every == 0:
                        out.flush()
                        self._save_index(index)
                else:
                    report.cache_hits += 1
                if "skip" in entry:
                    report.skipped.append((str(item.path), entry["skip"], entry.get("detail", "")))
                    log.info("skipped %s: %s %s", item.path, entry["skip"], entry.get("detail", ""))
                else:
                    report.files.append(CachedFile(item, entry["offset"], entry["length"]))
        self._save_index(index)
        return report

    def _tokenize(self, item: MidiItem, out, offset: int) -> dict:
        try:
            ids = encode_score(self.tokenizer, load_score(item.path, self.max_seconds))
        except MidiSkip as skip:
            return {"skip": skip.reason, "detail": skip.detail}
        except Exception as err:  # miditok on hostile-but-parseable input: skip, keep the run alive
            return {"skip": "tokenize_error", "detail": f"{type(err).__name__}: {str(err)[:200]}"}
        if ids.size == 0:
            return {"skip": NO_NOTES, "detail": "no pitched notes in tokenizer range"}
        out.write(ids.astype(DTYPE).tobytes())
        return {"offset": offset, "length": int(ids.size)}

    def ids(self) -> np.ndarray:
        """All cached ids, memory-mapped (nothing is read until sliced)."""
        if not self.tokens_path.exists() or self.tokens_path.stat().st_size == 0:
            return np.zeros(0, dtype=DTYPE)
        return np.memmap(self.tokens_path, dtype=DTYPE, mode="r")
