"""Aggregate PercePiano fold runs into one table (test R2 per fold, mean, the Ridge reference),
plus the hierarchy ablation (HAN vs the 7-layer baseline on each fold's test set).

    python -m lightning_modules.percepiano_report logs_dir=logs/percepiano_protocol [ablation=true] [rescore=false]

rescore=true scores the best checkpoint of a run that has none of its own test results (killed
before its test, or its csv overwritten): only for finished protocols, a running fold is untested too.

Expects <logs_dir>/<experiment>/fold<K>/ run dirs (hydra.run.dir), as bench/percepiano_protocol.sh
writes them. Each run's test R2 and epoch history come from its test_results.json (written when the
test of the best checkpoint ends); csv/metrics.csv only fills gaps (older runs); a run without a
test result is listed with what is missing. HAN runs are paired with the baseline of the same name
(percepiano_han_cpu <-> percepiano_baseline_cpu) for the ablation.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from metrics.regression import r2_per_dim

# measured on the same protocol (data README): sklearn on global MIDI statistics
REFERENCE = {"segment-group training mean": 0.38, "Ridge on ~56 MIDI statistics": 0.40,
             "Ridge + segment-group one-hot (test)": 0.50, "Ridge + one-hot (4-fold mean)": 0.48,
             "published HAN": 0.397, "published 7-layer Bi-LSTM": 0.187}


def _ckpt_epoch(path: str | None) -> int | None:
    m = re.search(r"epoch=(\d+)", Path(path).name) if path else None
    return int(m.group(1)) if m else None


def read_run(run_dir: Path) -> dict:
    """One fold run. The test R2 comes from `test_results.json` (written by the module when the
    test of the best checkpoint ends), not from csv/metrics.csv, which a second run into the same
    dir overwrites; the csv only fills in what the json lacks, and a missing piece is named."""
    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    out: dict = {"best_ckpt": str(best[-1]) if best else None, "status": "", "test_r2": float("nan"),
                 "best_val_r2": float("nan"), "epochs": 0, "steps": 0, "epoch_seconds": float("nan")}
    res_path = run_dir / "test_results.json"
    if res_path.exists():
        res = json.loads(res_path.read_text())
        hist = res.get("history", [])
        secs = [h["epoch_seconds"] for h in hist if "epoch_seconds" in h]
        out.update(status="done", test_r2=float(res["r2"]), test_r2_per_dim=res.get("r2_per_dim"),
                   tested_ckpt=res.get("ckpt_path"), epochs=len(hist),
                   steps=max((h["step"] for h in hist), default=0),
                   best_val_r2=max((h["val_r2"] for h in hist), default=float("nan")),
                   epoch_seconds=float(np.mean(secs)) if secs else float("nan"), source="test_results.json")
        if res.get("ckpt_path") and not Path(res["ckpt_path"]).exists():
            out["warning"] = f"tested checkpoint {res['ckpt_path']} no longer exists"
        out["best_epoch"] = _ckpt_epoch(res.get("ckpt_path"))
    csv = run_dir / "csv" / "metrics.csv"
    if csv.exists():
        df = pd.read_csv(csv)
        col = lambda name: df[name].dropna() if name in df else pd.Series(dtype=float)
        if out["status"] != "done" and len(col("test/r2")):
            out.update(status="done", test_r2=float(col("test/r2").iloc[-1]), source="csv/metrics.csv")
        if not out["epochs"]:
            out.update(epochs=len(col("val/r2")), steps=int(col("step").max()) if len(col("step")) else 0,
                       best_val_r2=float(col("val/r2").max()) if len(col("val/r2")) else float("nan"),
                       epoch_seconds=float(col("train/epoch_seconds").mean()) if len(col("train/epoch_seconds")) else float("nan"))
        diag = {c: float(col(c).iloc[0]) for c in df.columns if c.startswith("diag/") and len(col(c))}
        if diag:
            out["diagnostics"] = diag
        out["training_diagnostics"] = training_diagnostics(df)
    if res_path.exists() and res.get("target_std"):
        ratio = np.array(res["pred_std"]) / np.maximum(np.array(res["target_std"]), 1e-12)
        out["test_pred_target_std_ratio"] = {"mean": float(ratio.mean()), "min": float(ratio.min()),
                                             "max": float(ratio.max())}
    if out["status"] != "done":
        out["status"] = ("no test result; best checkpoint present (rescore=true scores it)" if best else
                         "no test result and no checkpoint (run failed or still running)")
    return out


def training_diagnostics(df: pd.DataFrame) -> dict:
    """What the diagnostics callbacks logged over a run: gradient norm per group and balance at the
    first and last monitored step, vanishing/exploding counts, attention entropy per epoch."""
    out: dict = {}
    grad_cols = [c for c in df.columns if c.startswith("grad/net.")]
    g = df[["step", *grad_cols]].dropna(subset=grad_cols, how="all") if grad_cols else pd.DataFrame()
    if len(g):
        first, last = g.iloc[0], g.iloc[-1]
        out["grad_first_step"], out["grad_last_step"] = int(first["step"]), int(last["step"])
        out["grad_first"] = {c[5:]: float(first[c]) for c in grad_cols}
        out["grad_last"] = {c[5:]: float(last[c]) for c in grad_cols}
        out["grad_median"] = {c[5:]: float(g[c].median()) for c in grad_cols}
    for name in ("grad/balance", "grad/vanishing_steps", "grad/exploding_steps"):
        if name in df and df[name].notna().any():
            vals = df[name].dropna()
            out[name[5:]] = {"first": float(vals.iloc[0]), "last": float(vals.iloc[-1]), "median": float(vals.median())}
    ent_cols = [c for c in df.columns if c.startswith("attn_entropy/")]
    if ent_cols:
        e = df[["epoch", *ent_cols]].dropna(subset=ent_cols, how="all")
        out["attention_entropy"] = {c.split("/", 1)[1]: [round(float(v), 4) for v in e[c]] for c in ent_cols}
    return out


def diagnostics_rows(runs: dict) -> list[str]:
    """A markdown table of the training diagnostics per run (first -> last monitored step)."""
    header = ("| experiment | fold | grad balance first -> last | weakest group (first -> last norm) | "
              "vanishing steps | attention entropy (first -> last epoch) | test pred/target std |")
    rows = ["", header, "|---|---|---|---|---|---|---|"]
    for exp, folds in runs.items():
        for k, r in sorted(folds.items()):
            d = r.get("training_diagnostics") or {}
            if not d.get("grad_first"):
                continue
            weak = min(d["grad_median"], key=d["grad_median"].get)
            bal = d.get("balance", {})
            ent = "; ".join(f"{n.split('.')[-1]} {v[0]:.3f} -> {v[-1]:.3f}" for n, v in d.get("attention_entropy", {}).items() if v)
            std = r.get("test_pred_target_std_ratio", {})
            rows.append(f"| {exp} | {k} | {bal.get('first', float('nan')):.3g} -> {bal.get('last', float('nan')):.3g} | "
                        f"{weak} ({d['grad_first'][weak]:.2g} -> {d['grad_last'][weak]:.2g}) | "
                        f"{d.get('vanishing_steps', {}).get('last', float('nan')):.0f} | {ent} | "
                        f"{std.get('mean', float('nan')):.2f} |")
    return rows


def pair_of(exp: str) -> str | None:
    """The baseline experiment trained alongside a HAN experiment (percepiano_han_cpu -> percepiano_baseline_cpu)."""
    return exp.replace("_han", "_baseline", 1) if "_han" in exp else None


_DATA: dict = {}


def fold_data(fold: int, data_root: str | None, cache_dir: str | None):
    """The performer-protocol DataModule of a fold, set up (default data settings, as the runs use)."""
    from datamodules.percepiano.datamodule import PercePianoDataModule

    if fold not in _DATA:
        root = data_root or str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "percepiano")
        cache = cache_dir or os.environ.get("MUSICPLAT_CACHE", str(Path.home() / ".cache" / "musicplat"))
        _DATA[fold] = PercePianoDataModule(root=root, cache_dir=cache, fold=fold)
        _DATA[fold].setup()
    return _DATA[fold]


def test_loader(fold: int, data_root: str | None, cache_dir: str | None):
    return fold_data(fold, data_root, cache_dir).test_dataloader()


def load_run_module(ckpt: str, fold: int, data_root: str | None, cache_dir: str | None):
    """A fold run's module from its checkpoint; a checkpoint without the platform meta is rebuilt
    from the run's .hydra/config.yaml model config and the fold's data statistics."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from lightning_modules.checkpoint import load_module

    try:
        return load_module(ckpt)
    except ValueError:
        cfg_path = Path(ckpt).parents[1] / ".hydra" / "config.yaml"
        if not cfg_path.exists():
            raise
        import torch

        model_cfg = OmegaConf.load(cfg_path).model
        module = instantiate(model_cfg, **fold_data(fold, data_root, cache_dir).model_kwargs())
        module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
        return module.eval()


def ablation(fold: int, han_ckpt: str, base_ckpt: str, data_root: str | None, cache_dir: str | None) -> dict:
    """HAN vs baseline on the fold's test set, plus where their R2 comes from (`piece_decomposition`)."""
    from callbacks.ablation import compare_on_loader

    han, base = (load_run_module(c, fold, data_root, cache_dir) for c in (han_ckpt, base_ckpt))
    preds: list = []
    out = compare_on_loader(han, base, test_loader(fold, data_root, cache_dir), han.label_names, preds)
    return {**out, "piece_decomposition": piece_decomposition(fold_data(fold, data_root, cache_dir), *preds)}


def piece_decomposition(dm, han_pred: np.ndarray, base_pred: np.ndarray, target: np.ndarray) -> dict:
    """Mean test R2 of the training-split piece mean and segment-group mean (what knowing only the
    piece / the segment gives), and each model's R2 on the deviations from them: ~0 means the model
    predicts the piece (segment) and nothing about this particular performance."""
    test = dm.datasets["test"].entries  # item id i -> entries[i]; predictions are sorted by item id
    by_key = {it.key: it for it in dm.items}
    train = [(by_key[e["key"]], np.asarray(e["labels"])) for e in dm.datasets["train"].entries]
    piece_mean, group_mean = {}, {}
    for it, y in train:
        piece_mean.setdefault(it.piece, []).append(y)
        group_mean.setdefault(it.group, []).append(y)
    items = [by_key[e["key"]] for e in test]
    if len(items) != len(target):
        raise ValueError(f"piece_decomposition: {len(target)} predictions for {len(items)} test items")
    ref = {"piece": np.array([np.mean(piece_mean[it.piece], 0) for it in items]),
           "segment_group": np.array([np.mean(group_mean.get(it.group, piece_mean[it.piece]), 0) for it in items])}
    out = {}
    for name, r in ref.items():
        out[f"{name}_mean_r2"] = float(r2_per_dim(r, target).mean())
        out[f"han_r2_within_{name}"] = float(r2_per_dim(han_pred - r, target - r).mean())
        out[f"baseline_r2_within_{name}"] = float(r2_per_dim(base_pred - r, target - r).mean())
    return out


def rescore(fold: int, ckpt: str, data_root: str | None, cache_dir: str | None) -> float:
    """Test R2 of a checkpoint whose run never wrote a test result (what its test would have logged)."""
    from callbacks.ablation import predict_loader

    pred, target = predict_loader(load_run_module(ckpt, fold, data_root, cache_dir), test_loader(fold, data_root, cache_dir))
    return float(r2_per_dim(pred, target).mean())


def main(argv: list[str]) -> str:
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    logs = Path(args.get("logs_dir", "logs/percepiano_protocol"))
    if not logs.is_dir():
        raise SystemExit(f"percepiano_report: logs_dir={logs} does not exist; pass the <out_dir> given to "
                         "bench/percepiano_protocol.sh (it holds <experiment>/fold<K>/ run dirs)")
    runs = {exp.name: {int(f.name[4:]): read_run(f) for f in sorted(exp.glob("fold*"))}
            for exp in sorted(logs.iterdir()) if exp.is_dir() and list(exp.glob("fold*"))}
    if args.get("rescore", "false") == "true":  # finished protocol, run killed/crashed before its test: score the best ckpt
        for folds in runs.values():
            for k, r in folds.items():
                if r["status"].startswith("no test result; best checkpoint"):
                    r.update(test_r2=rescore(k, r["best_ckpt"], args.get("data_root"), args.get("cache_dir")),
                             status="done (best checkpoint re-scored: the run wrote no test result)",
                             source="re-scored " + Path(r["best_ckpt"]).name)
    rows = ["| experiment | fold | test R2 | best val R2 | epochs | steps | s/epoch (train+val) | status |",
            "|---|---|---|---|---|---|---|---|"]
    means = {}
    for exp, folds in runs.items():
        for k, r in sorted(folds.items()):
            rows.append(f"| {exp} | {k} | {r.get('test_r2', float('nan')):.4f} | {r.get('best_val_r2', float('nan')):.4f} | "
                        f"{r.get('epochs', 0)} | {r.get('steps', 0)} | {r.get('epoch_seconds', float('nan')):.0f} | {r['status']} |")
        done = [r["test_r2"] for r in folds.values() if r["status"].startswith("done")]
        means[exp] = {"mean_test_r2": float(np.mean(done)) if done else float("nan"), "folds_done": len(done)}
        rows.append(f"| **{exp} mean** | {len(done)} folds | **{means[exp]['mean_test_r2']:.4f}** | | | | | |")
    rows += diagnostics_rows(runs)
    rows += ["", "| reference (same performer protocol) | test R2 |", "|---|---|"]
    rows += [f"| {k} | {v:.3f} |" for k, v in REFERENCE.items()]
    abl = {}
    pairs = [(h, pair_of(h)) for h in runs if pair_of(h) in runs]
    if args.get("ablation", "true") == "true" and pairs:
        header = ("| HAN experiment | fold | HAN test R2 | baseline test R2 | delta (hierarchy) | piece mean / segment mean R2 "
                  "| HAN / baseline R2 within piece | HAN / baseline R2 within segment |")
        rows += ["", header, "|---|---|---|---|---|---|---|---|"]
        for han_exp, base_exp in pairs:
            for k in sorted(runs[han_exp]):
                han_run, base_run = runs[han_exp][k], runs[base_exp].get(k, {})
                h, b = han_run.get("tested_ckpt") or han_run.get("best_ckpt"), base_run.get("tested_ckpt") or base_run.get("best_ckpt")
                if not (h and b and Path(h).exists() and Path(b).exists()
                        and han_run["status"].startswith("done") and base_run.get("status", "").startswith("done")):
                    rows.append(f"| {han_exp} | {k} | | | missing: a finished, tested run of both | | | |")
                    continue
                saved = logs / f"ablation_{han_exp}_fold{k}.json"  # reused while both checkpoints are unchanged
                prev = json.loads(saved.read_text()) if saved.exists() else {}
                if prev.get("ckpts") == [h, b]:
                    abl[f"{han_exp}/{k}"] = prev
                else:
                    prev = {**ablation(k, h, b, args.get("data_root"), args.get("cache_dir")), "ckpts": [h, b]}
                    saved.write_text(json.dumps(prev, indent=1))
                    abl[f"{han_exp}/{k}"] = prev
                decomposition = prev.get("piece_decomposition", {})
                g = lambda key, d=decomposition: d.get(key, float("nan"))
                rows.append(f"| {han_exp} | {k} | {prev['han_r2']:.4f} | {prev['baseline_r2']:.4f} | {prev['delta_r2']:+.4f} | "
                            f"{g('piece_mean_r2'):.3f} / {g('segment_group_mean_r2'):.3f} | "
                            f"{g('han_r2_within_piece'):.3f} / {g('baseline_r2_within_piece'):.3f} | "
                            f"{g('han_r2_within_segment_group'):.3f} / {g('baseline_r2_within_segment_group'):.3f} |")
    table = "\n".join(rows)
    (logs / "report.json").write_text(json.dumps({"runs": runs, "means": means, "ablation": abl,
                                                  "reference": REFERENCE}, indent=1))
    (logs / "report.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    print(main(sys.argv[1:]))
