"""H1 / H4 / GS (MusDr) of fractal samples vs POP909 windows on the same 16th-note roll.

    python -m bench.fractal_samples_metrics --ckpt run/checkpoints/last.ckpt [--n-samples 32]

Reference: the first window of each of the first `--n-ref` POP909 songs, quantised and written
back through the same roll (so both sides share the grid and the single-track rendering).
Samples: one per reference song, conditioned on that song's chroma. Metrics: metrics.registry.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.report import write_results
from datamodules.fractal_datamodule import FractalDataModule
from datamodules.piano_roll import roll_to_score
from datamodules.sources.pop909 import Pop909Source
from lightning_modules.checkpoint import load_module
from metrics.notes import Piece
from metrics.registry import compute_metrics

NAMES = ["H1", "H4", "GS"]


def summarise(label: str, scores: list, extra: dict) -> dict:
    values = {n: [] for n in NAMES}
    for i, score in enumerate(scores):
        got, _ = compute_metrics(Piece(score, name=f"{label}_{i}"), NAMES)
        for n in NAMES:
            values[n].append(got[n])
    row = {"set": label, "n": len(scores), **extra}
    for n in NAMES:
        arr = np.asarray(values[n], dtype=float)
        row[f"{n}_mean"], row[f"{n}_std"] = float(np.nanmean(arr)), float(np.nanstd(arr))
    row["notes_per_piece"] = float(np.mean([s.note_num() for s in scores]))
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/pop909"))
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache/musicplat"))
    parser.add_argument("--n-ref", type=int, default=32)
    parser.add_argument("--first-song", type=int, default=0, help="skip the first N songs (held-out songs)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--name", default="fractal_samples_metrics")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    module = load_module(args.ckpt).eval()
    hp = module.hparams
    dm = FractalDataModule(Pop909Source(args.data_root), args.cache_dir, hp.steps_per_beat, hp.beats_per_bar,
                           hp.window_steps // (hp.steps_per_beat * hp.beats_per_bar), pitch_low=hp.pitch_low,
                           n_pitches=hp.n_pitches, limit_files=args.first_song + args.n_ref, max_windows_per_song=1,
                           train_on_all=True)
    dm.setup()
    windows = [dm.datasets["train"][i] for i in range(len(dm.datasets["train"]))][args.first_song:]
    ref_scores = [roll_to_score(w["velocity"].numpy(), w["duration"].numpy(), hp.steps_per_beat, hp.pitch_low,
                                hp.qpm) for w in windows]
    sample_scores = []
    for start in range(0, len(windows), args.batch):
        chroma = torch.stack([w["chroma"] for w in windows[start:start + args.batch]])
        levels = module.generate_levels(n_samples=chroma.size(0), chroma=chroma, seed=start,
                                        temperature=args.temperature)
        for i in range(chroma.size(0)):
            sample_scores.append(module.to_score(levels[-1]["velocity"][i], levels[-1]["duration"][i]))
    songs = f"POP909 songs {args.first_song}..{args.first_song + len(windows) - 1}, first 16-bar window"
    rows = [summarise("pop909", ref_scores, {"source": songs}),
            summarise("samples", sample_scores, {"source": f"{Path(args.ckpt).name}, chroma of those songs"})]
    write_results(args.name, rows, notes=f"checkpoint {args.ckpt}; {songs}")


if __name__ == "__main__":
    main()
