"""Aggregate PercePiano fold runs into one table (test R2 per fold, mean, the Ridge reference),
plus the hierarchy ablation (HAN vs the 7-layer baseline on each fold's test set).

    python -m lightning_modules.percepiano_report logs_dir=logs/percepiano_protocol [ablation=true]

Expects <logs_dir>/<experiment>/fold<K>/ run dirs (hydra.run.dir) with csv/metrics.csv and
checkpoints/best-*.ckpt, as bench/percepiano_protocol.sh writes them.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# measured on the same protocol (data README): sklearn on global MIDI statistics
REFERENCE = {"segment-group training mean": 0.38, "Ridge on ~56 MIDI statistics": 0.40,
             "Ridge + segment-group one-hot (test)": 0.50, "Ridge + one-hot (4-fold mean)": 0.48,
             "published HAN": 0.397, "published 7-layer Bi-LSTM": 0.187}


def read_run(run_dir: Path) -> dict:
    csv = run_dir / "csv" / "metrics.csv"
    if not csv.exists():
        return {"status": "no metrics.csv (run failed or still running)"}
    df = pd.read_csv(csv)
    col = lambda name: df[name].dropna() if name in df else pd.Series(dtype=float)
    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    out = {"status": "done" if len(col("test/r2")) else "no test yet",
           "test_r2": float(col("test/r2").iloc[-1]) if len(col("test/r2")) else float("nan"),
           "best_val_r2": float(col("val/r2").max()) if len(col("val/r2")) else float("nan"),
           "epochs": len(col("val/r2")), "steps": int(col("step").max()) if len(col("step")) else 0,
           "epoch_seconds": float(col("train/epoch_seconds").mean()) if len(col("train/epoch_seconds")) else float("nan"),
           "best_ckpt": str(best[-1]) if best else None}
    diag = {c: float(col(c).iloc[0]) for c in df.columns if c.startswith("diag/") and len(col(c))}
    if diag:
        out["diagnostics"] = diag
    return out


def ablation(fold: int, han_ckpt: str, base_ckpt: str, data_root: str | None, cache_dir: str | None) -> dict:
    from callbacks.ablation import compare_on_loader
    from datamodules.percepiano.datamodule import PercePianoDataModule
    from lightning_modules.checkpoint import load_module

    han, base = load_module(han_ckpt), load_module(base_ckpt)
    root = data_root or str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "percepiano")
    cache = cache_dir or os.environ.get("MUSICPLAT_CACHE", str(Path.home() / ".cache" / "musicplat"))
    dm = PercePianoDataModule(root=root, cache_dir=cache, fold=fold)
    dm.setup()
    return compare_on_loader(han, base, dm.test_dataloader(), han.label_names)


def main(argv: list[str]) -> str:
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    logs = Path(args.get("logs_dir", "logs/percepiano_protocol"))
    runs = {exp.name: {int(f.name[4:]): read_run(f) for f in sorted(exp.glob("fold*"))}
            for exp in sorted(logs.iterdir()) if exp.is_dir() and list(exp.glob("fold*"))}
    rows = ["| experiment | fold | test R2 | best val R2 | epochs | steps | s/epoch (train+val) | status |",
            "|---|---|---|---|---|---|---|---|"]
    means = {}
    for exp, folds in runs.items():
        for k, r in sorted(folds.items()):
            rows.append(f"| {exp} | {k} | {r.get('test_r2', float('nan')):.4f} | {r.get('best_val_r2', float('nan')):.4f} | "
                        f"{r.get('epochs', 0)} | {r.get('steps', 0)} | {r.get('epoch_seconds', float('nan')):.0f} | {r['status']} |")
        done = [r["test_r2"] for r in folds.values() if r["status"] == "done"]
        means[exp] = {"mean_test_r2": float(np.mean(done)) if done else float("nan"), "folds_done": len(done)}
        rows.append(f"| **{exp} mean** | {len(done)} folds | **{means[exp]['mean_test_r2']:.4f}** | | | | | |")
    rows += ["", "| reference (same performer protocol) | test R2 |", "|---|---|"]
    rows += [f"| {k} | {v:.3f} |" for k, v in REFERENCE.items()]
    abl = {}
    if args.get("ablation", "true") == "true" and {"percepiano_han", "percepiano_baseline"} <= set(runs):
        rows += ["", "| fold | HAN test R2 | baseline test R2 | delta (hierarchy) |", "|---|---|---|---|"]
        for k in sorted(runs["percepiano_han"]):
            han_run, base_run = runs["percepiano_han"][k], runs["percepiano_baseline"].get(k, {})
            h, b = han_run.get("best_ckpt"), base_run.get("best_ckpt")
            if h and b and han_run["status"] == base_run.get("status") == "done":
                saved = logs / f"ablation_fold{k}.json"  # reused while both checkpoints are unchanged
                prev = json.loads(saved.read_text()) if saved.exists() else {}
                if prev.get("ckpts") == [h, b]:
                    abl[k] = prev
                else:
                    abl[k] = {**ablation(k, h, b, args.get("data_root"), args.get("cache_dir")), "ckpts": [h, b]}
                    saved.write_text(json.dumps(abl[k], indent=1))
                rows.append(f"| {k} | {abl[k]['han_r2']:.4f} | {abl[k]['baseline_r2']:.4f} | {abl[k]['delta_r2']:+.4f} |")
    table = "\n".join(rows)
    (logs / "report.json").write_text(json.dumps({"runs": runs, "means": means, "ablation": abl,
                                                  "reference": REFERENCE}, indent=1))
    (logs / "report.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    print(main(sys.argv[1:]))
