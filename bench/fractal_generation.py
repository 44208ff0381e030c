"""Fractal generation time per 16 bars, with and without the note level's KV cache.

    python -m bench.fractal_generation                       # default config (1024-d notes), random init
    python -m bench.fractal_generation --ckpt run/checkpoints/last.ckpt --name fractal_generation_trained

With random init the note level emits several notes per step (about 4 on average, where
POP909 has ~0.5): more work than a trained model. A trained checkpoint gives the realistic number.
Writes bench/results/<name>.json and .md (per-level seconds from the progress callback).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from bench.report import write_results
from lightning_modules.checkpoint import load_module

CONF = Path(__file__).resolve().parents[1] / "conf"


def default_module(window_bars: int = 16):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=fractal"])
    torch.manual_seed(0)
    return instantiate(cfg.model, n_pitches=88, pitch_low=21, window_steps=16 * window_bars, qpm=100.0)


def time_generation(module, use_cache: bool, seed: int) -> dict:
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def progress(level: str, step: int, total: int) -> None:
        marks[level] = time.perf_counter()

    levels = module.generate_levels(n_samples=1, seed=seed, use_cache=use_cache, progress=progress)
    total = time.perf_counter() - start
    per_level, before = {}, start
    for name in module.level_names:
        if name in marks:
            per_level[f"s_{name}"] = marks[name] - before
            before = marks[name]
    return {"seconds": total, "notes": int((levels[-1]["velocity"] > 0).sum()), **per_level}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="a fractal checkpoint (default: default config, random init)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="fractal_generation")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    module = load_module(args.ckpt) if args.ckpt else default_module()
    module.eval()
    bars = module.hparams.window_steps // (module.hparams.steps_per_beat * module.hparams.beats_per_bar)
    out = module.chain[-1]
    rows = []
    for use_cache in (True, False):
        runs = [time_generation(module, use_cache, seed) for seed in range(args.repeats)]
        best = min(runs, key=lambda r: r["seconds"])
        rows.append({"kv_cache": use_cache, "bars": bars, "median_s": sorted(r["seconds"] for r in runs)[len(runs) // 2],
                     "s_per_16_bars": best["seconds"] * 16 / bars, "notes": best["notes"],
                     "note_level_d_model": out.d_model, "max_notes": out.max_notes,
                     **{k: v for k, v in best.items() if k.startswith("s_")}})
    source = args.ckpt or "conf/model/fractal.yaml, random init (more notes per step than music: pessimistic)"
    write_results(args.name, rows, notes=f"model: {source}; threads {args.threads}; best of {args.repeats} "
                                          "(s_per_16_bars from the best run; s_<level>: that level's share)")


if __name__ == "__main__":
    main()
