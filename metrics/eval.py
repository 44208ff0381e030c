"""Evaluate folders of MIDI files with every metric: `python -m metrics.eval generated=DIR`.

Writes per_file.csv (one row per file: status ok/skipped/failed, the reason, timing, the
metric values), summary.json, summary.md and histograms.png into `out_dir` (default:
Hydra's run dir). Unreadable or empty files are skipped with their reason; no file stops
the run.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datamodules.midi_io import MidiSkip, load_score
from metrics.annotations import apply_annotations
from metrics.notes import Piece
from metrics.registry import METRICS, compute_metrics, resolve_names
from metrics.report import OK, histogram_figure, markdown_table, summarise

log = logging.getLogger(__name__)

MIDI_SUFFIXES = {".mid", ".midi"}
NO_PITCHED_NOTES = "no_pitched_notes"


def find_midi_files(folder: Path | str, limit: int | None = None) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
    return files[:limit] if limit else files


def score_file(path: Path, names: list[str], chords: str = "auto",
               max_seconds: float = 3600.0) -> dict:
    """One row of the per-file table (without the set and file columns)."""
    started = time.perf_counter()
    row: dict = {"status": OK, "reason": "", "n_notes": 0, "chord_source": "", "errors": ""}
    try:
        score = load_score(path, max_seconds=max_seconds)
        spans = None
        if chords == "auto":
            score, spans = apply_annotations(path, score)
        piece = Piece(score, chords=spans, name=str(path))
        row["n_notes"] = len(piece.notes)
        if len(piece.notes) == 0:
            raise MidiSkip(path, NO_PITCHED_NOTES, "only drum notes")
        row["chord_source"] = piece.chord_source
        values, errors = compute_metrics(piece, names)
        row.update(values)
        row["errors"] = "; ".join(f"{k}: {v}" for k, v in errors.items())
    except MidiSkip as skip:
        log.warning("skipped %s: %s %s", path, skip.reason, skip.detail)
        row.update(status="skipped", reason=skip.reason + (f": {skip.detail}" if skip.detail else ""))
    except Exception as err:  # a file that breaks the scorer is reported, not fatal
        log.exception("failed on %s", path)
        row.update(status="failed", reason=f"{type(err).__name__}: {err}"[:300])
    row["seconds"] = time.perf_counter() - started
    return row


def evaluate(generated: Path | str, reference: Path | str | None, out_dir: Path | str,
             metrics: str | list[str] = "all", chords: str = "auto",
             max_files: int | None = None, max_seconds: float = 3600.0) -> dict:
    """Score the folders, write the report files into out_dir, return the summary."""
    names = resolve_names(metrics)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {"generated": Path(generated)}
    if reference:
        sets["reference"] = Path(reference)
    rows = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[current]}")]
    with Progress(*columns) as progress:
        for set_name, folder in sets.items():
            files = find_midi_files(folder, max_files)
            task = progress.add_task(set_name, total=len(files), current="")
            for path in files:
                progress.update(task, current=path.name)
                row = {"set": set_name, "file": str(path.relative_to(folder))}
                row.update(score_file(path, names, chords, max_seconds))
                rows.append(row)
                progress.advance(task)
    base = ["set", "file", "status", "reason", "n_notes", "chord_source", "seconds"]
    table = pd.DataFrame(rows, columns=base + names + ["errors"])
    table.to_csv(out_dir / "per_file.csv", index=False)

    summary = summarise(table, names)
    summary["metrics"] = names
    summary["folders"] = {k: str(v) for k, v in sets.items()}
    summary["seconds_per_file"] = float(table["seconds"].mean()) if len(table) else math.nan
    summary["skipped_files"] = [
        {"set": r["set"], "file": r["file"], "status": r["status"], "reason": r["reason"]}
        for _, r in table[table["status"] != OK].iterrows()]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    descriptions = {n: METRICS[n].description for n in names}
    markdown = "# Evaluation\n\n" + markdown_table(summary, names, descriptions)
    if summary["skipped_files"]:
        markdown += "\nSkipped:\n" + "".join(
            f"- {s['set']}/{s['file']}: {s['status']} ({s['reason']})\n"
            for s in summary["skipped_files"])
    (out_dir / "summary.md").write_text(markdown)
    histogram_figure(table, names, out_dir / "histograms.png")
    log.info("wrote %s (%d files, %d skipped)", out_dir, len(table), len(summary["skipped_files"]))
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    out_dir = cfg.out_dir or HydraConfig.get().runtime.output_dir
    metrics = cfg.metrics
    if not isinstance(metrics, str):
        metrics = list(OmegaConf.to_container(metrics))
    evaluate(cfg.generated, cfg.reference, out_dir, metrics=metrics, chords=cfg.chords,
             max_files=cfg.max_files, max_seconds=cfg.max_seconds)
    print(f"evaluation written to {Path(out_dir).resolve()}")


if __name__ == "__main__":
    main()
