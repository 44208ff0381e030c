"""Tokenize all of POP909: files/s and tokens/s cold and cached; symusic vs mido load time.

    python -m bench.tokenize_pop909 [--root ../shared/data/pop909] [--mido-files 100]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mido
import symusic

from bench.report import write_results
from datamodules.sources.pop909 import Pop909Source
from datamodules.token_cache import TokenCache
from datamodules.tokenizer import build_tokenizer

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "pop909"


def timed_build(cache_dir: Path, items, tokenizer) -> tuple[float, object]:
    start = time.perf_counter()
    report = TokenCache(cache_dir, tokenizer).build(items, progress=False)
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--mido-files", type=int, default=100, help="files for the load-time ratio")
    args = parser.parse_args()
    items = Pop909Source(args.root).items()
    tokenizer = build_tokenizer("REMI", beat_res={"0_4": 8, "4_12": 4}, num_velocities=32, use_tempos=True,
                                num_tempos=32, tempo_range=[40, 250])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("cold", "cached"):
            seconds, report = timed_build(Path(tmp), items, tokenizer)
            tokens = sum(f.length for f in report.files)
            rows.append({"run": label, "files": len(items), "skipped": len(report.skipped),
                         "tokenized": report.tokenized, "seconds": seconds, "files_per_s": len(items) / seconds,
                         "tokens": tokens, "tokens_per_s": tokens / seconds})
    subset = [it.path for it in items[: args.mido_files]]
    start = time.perf_counter()
    for path in subset:
        symusic.Score(str(path))
    symusic_s = time.perf_counter() - start
    start = time.perf_counter()
    for path in subset:
        mido.MidiFile(str(path))
    mido_s = time.perf_counter() - start
    rows.append({"run": f"load {len(subset)} files", "symusic_ms_per_file": 1000 * symusic_s / len(subset),
                 "mido_ms_per_file": 1000 * mido_s / len(subset), "mido_over_symusic": mido_s / symusic_s})
    write_results("tokenize_pop909", rows, notes="REMI, 32 velocities, tempos; TokenCache over all POP909 songs.")


if __name__ == "__main__":
    main()
