"""Reference metric figures of real music: POP909, WJazzD solos, Bach chorales.

    python -m bench.metrics_reference [--data-root ../shared/data] [--si-per-set 24]

Every metric except SI on every piece; SI (O(N^4) scape plot, tens of seconds for a
4-minute song) on an evenly spaced subset of --si-per-set pieces per data set. Also times
the SI scape plot against the straightforward per-segment implementation on real SSMs.
Writes bench/results/metrics_reference.json and .md.

Per data set: POP909 = all three tracks, chords from chord_midi.txt, meter from
beat_midi.txt (the files mostly declare 1/4); WJazzD = the SOLO
track only (what MusDr measured), chords read off the conversion's CHORDS track;
chorales = all four voices, chords from the template recogniser.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pandas as pd

from datamodules.midi_io import MidiSkip, load_score
from datamodules.sources.chorales import ChoraleSource
from datamodules.sources.pop909 import Pop909Source
from datamodules.sources.wjazzd import WJazzDSource
from metrics.annotations import apply_annotations, chord_track_spans, without_tracks
from metrics.musdr import piece_self_similarity
from metrics.notes import Piece
from metrics.registry import METRIC_SETS, METRICS, compute_metrics
from metrics.report import OK, markdown_table, summarise
from metrics.scapeplot import fitness_scape_plot, fitness_scape_plot_loops

log = logging.getLogger("bench.metrics_reference")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SI_NAMES = [n for n in METRIC_SETS["all"] if METRICS[n].slow]
FAST_NAMES = METRIC_SETS["fast"]


def load_piece(source: str, path: Path) -> Piece:
    score = load_score(path)
    if source == "pop909":  # annotated meter and chords
        score, chords = apply_annotations(path, score)
        return Piece(score, chords=chords, name=path.name)
    if source == "wjazzd":
        chords = chord_track_spans(score)
        return Piece(without_tracks(score, {"CHORDS", "BASS"}), chords=chords, name=path.name)
    return Piece(score, name=path.name)


def score_item(job: tuple[str, str, bool]) -> dict:
    source, path, with_si = job
    row = {"set": source, "file": Path(path).name, "status": OK, "reason": ""}
    try:
        started = time.perf_counter()
        piece = load_piece(source, Path(path))
        values, errors = compute_metrics(piece, FAST_NAMES)
        row["seconds_fast"] = time.perf_counter() - started
        row.update(values)
        row["frames"] = math.nan
        if with_si:
            started = time.perf_counter()
            si_values, si_errors = compute_metrics(piece, SI_NAMES)
            row["seconds_si"] = time.perf_counter() - started
            row["frames"] = piece.cache["ssm"].shape[0] if "ssm" in piece.cache else math.nan
            row.update(si_values)
            errors.update(si_errors)
        row["errors"] = "; ".join(f"{k}: {v}" for k, v in errors.items())
        row["meter"] = "/".join(str(x) for x in _meter(piece))
    except MidiSkip as skip:
        row.update(status="skipped", reason=skip.reason)
    return row


def _meter(piece: Piece) -> tuple[int, int]:
    """The last time signature (for POP909, the annotated one after the pickup)."""
    signatures = sorted(piece.score.time_signatures, key=lambda ts: ts.time)
    return (signatures[-1].numerator, signatures[-1].denominator) if signatures else (4, 4)


def si_speedup(path: Path, sizes: tuple[int, ...]) -> list[dict]:
    """Straightforward vs batched scape plot on the top-left N x N block of a real SSM."""
    S_full = piece_self_similarity(load_piece("pop909", path))
    out = []
    for n in sizes:
        S = np.array(S_full[:n, :n])
        started = time.perf_counter()
        expected = fitness_scape_plot_loops(S)
        loops = time.perf_counter() - started
        started = time.perf_counter()
        batched = fitness_scape_plot(S)
        fast = time.perf_counter() - started
        out.append({"frames": n, "loops_s": loops, "batched_s": fast, "speedup": loops / fast,
                    "equal": bool(np.array_equal(expected, batched))})
        log.info("SI scape plot N=%d: loops %.2f s, batched %.3f s (x%.0f), equal=%s",
                 n, loops, fast, loops / fast, out[-1]["equal"])
    return out


def evenly_spaced(count: int, k: int) -> set[int]:
    return set(np.linspace(0, count - 1, min(k, count)).round().astype(int).tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/musicplat/bench"))
    parser.add_argument("--limit", type=int, default=None, help="pieces per data set")
    parser.add_argument("--si-per-set", type=int, default=16)
    parser.add_argument("--speedup-sizes", type=int, nargs="*", default=[48, 96])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    root, cache = args.data_root, args.cache_dir.expanduser()
    sources = {
        "pop909": lambda: Pop909Source(root / "pop909").items(),
        "wjazzd": lambda: WJazzDSource(root / "wjazzd", cache, show_progress=False).items(),
        "chorales": lambda: ChoraleSource(cache).items(),
    }
    jobs = []
    for name, items in sources.items():
        paths = [str(item.path) for item in items()][: args.limit]
        with_si = evenly_spaced(len(paths), args.si_per_set)
        jobs += [(name, p, i in with_si) for i, p in enumerate(paths)]
        log.info("%s: %d pieces, SI on %d", name, len(paths), len(with_si))

    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        rows = []
        for i, row in enumerate(pool.imap(score_item, jobs, chunksize=1)):
            rows.append(row)
            if i % 100 == 0:
                log.info("%d / %d pieces", i + 1, len(jobs))
    wall = time.perf_counter() - started
    table = pd.DataFrame(rows)
    names = FAST_NAMES + SI_NAMES
    summary = summarise(table, names)
    timing = {}
    for name, rows_of_set in table[table["status"] == OK].groupby("set", sort=False):
        si_rows = rows_of_set.dropna(subset=["seconds_si"])
        timing[name] = {
            "seconds_per_file_fast_metrics": float(rows_of_set["seconds_fast"].mean()),
            "seconds_per_file_si": float(si_rows["seconds_si"].mean()),
            "si_frames_mean": float(si_rows["frames"].mean()),
            "si_files": len(si_rows),
            "meters": rows_of_set["meter"].value_counts().head(5).to_dict(),
            "metric_errors": int((rows_of_set["errors"] != "").sum()),
        }
    speedup = si_speedup(root / "pop909" / "001" / "001.mid", tuple(args.speedup_sizes))
    result = {"summary": summary, "timing": timing, "si_speedup": speedup,
              "wall_seconds": wall, "workers": args.workers, "si_per_set": args.si_per_set}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "metrics_reference.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "metrics_reference.md").write_text(render_markdown(result, names))
    log.info("wrote %s (%.0f s)", RESULTS / "metrics_reference.md", wall)


def render_markdown(result: dict, names: list[str]) -> str:
    descriptions = {n: METRICS[n].description for n in names}
    intro = (f"Mean ± std per data set; SI on an evenly spaced subset of "
             f"{result['si_per_set']} pieces per set. Produced by "
             "`python -m bench.metrics_reference`.")
    lines = ["# Metric reference figures (real music)", "", intro, "",
             markdown_table(result["summary"], names, descriptions), "## Time per file", "",
             "| set | fast metrics (s) | SI (s) | SI frames (2 Hz) | SI files | meters |",
             "|---|---|---|---|---|---|"]
    for name, t in result["timing"].items():
        meters = ", ".join(f"{k}: {v}" for k, v in t["meters"].items())
        lines.append(f"| {name} | {t['seconds_per_file_fast_metrics']:.3f} | "
                     f"{t['seconds_per_file_si']:.1f} | {t['si_frames_mean']:.0f} | "
                     f"{t['si_files']} | {meters} |")
    lines += ["", "## SI scape plot: batched vs straightforward", "",
              "| frames | straightforward (s) | batched (s) | speed-up | identical |",
              "|---|---|---|---|---|"]
    for s in result["si_speedup"]:
        lines.append(f"| {s['frames']} | {s['loops_s']:.2f} | {s['batched_s']:.3f} | "
                     f"{s['speedup']:.0f}x | {s['equal']} |")
    lines.append(f"\nWall time {result['wall_seconds']:.0f} s on {result['workers']} workers.\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
