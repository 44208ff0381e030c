"""Per-file metric tables -> summary (mean, std, distribution distances), markdown, figure."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from metrics.distribution import compare_sets, finite

OK = "ok"


def summarise(table: pd.DataFrame, names: list[str]) -> dict:
    """Summary of a per-file table with columns set, status, reason and one per metric."""
    summary: dict = {"sets": {}, "distances": {}}
    for set_name, rows in table.groupby("set", sort=False):
        good = rows[rows["status"] == OK]
        skipped = rows[rows["status"] != OK]
        stats = {}
        for name in names:
            values = finite(good[name]) if name in good else np.zeros(0)
            stats[name] = {
                "mean": float(values.mean()) if values.size else math.nan,
                "std": float(values.std(ddof=1)) if values.size > 1 else math.nan,
                "n": int(values.size),
            }
        summary["sets"][set_name] = {
            "files": len(rows),
            "scored": len(good),
            "skipped": len(skipped),
            "skip_reasons": {str(k): int(v) for k, v in skipped["reason"].value_counts().items()},
            "metrics": stats,
        }
    sets = list(summary["sets"])
    if "generated" in sets and "reference" in sets:
        gen = table[(table["set"] == "generated") & (table["status"] == OK)]
        ref = table[(table["set"] == "reference") & (table["status"] == OK)]
        summary["distances"] = {name: compare_sets(gen[name], ref[name]) for name in names}
    return summary


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(summary: dict, names: list[str], descriptions: dict[str, str] | None = None
                   ) -> str:
    """One row per metric: mean ± std per set, then the distances when there are two sets."""
    sets = list(summary["sets"])
    has_distances = bool(summary.get("distances"))
    header = ["metric"] + [f"{s} mean ± std" for s in sets]
    if has_distances:
        header += ["OA", "KL", "OA intra/inter", "KL intra/inter"]
    if descriptions:
        header.append("definition")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [name]
        for s in sets:
            stat = summary["sets"][s]["metrics"][name]
            cells.append(f"{_fmt(stat['mean'])} ± {_fmt(stat['std'])}")
        if has_distances:
            d = summary["distances"][name]
            cells += [_fmt(d["overlap_area"]), _fmt(d["kl"]), _fmt(d["overlap_area_intra_inter"]),
                      _fmt(d["kl_intra_inter"])]
        if descriptions:
            cells.append(descriptions.get(name, ""))
        lines.append("| " + " | ".join(cells) + " |")
    counts = ", ".join(f"{s}: {v['scored']} scored, {v['skipped']} skipped"
                       for s, v in summary["sets"].items())
    return "\n".join(lines) + f"\n\nFiles: {counts}.\n"


def histogram_figure(table: pd.DataFrame, names: list[str], path: Path | str) -> Path:
    """One grid of histograms, one panel per metric, each set overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    good = table[table["status"] == OK]
    for ax, name in zip(axes.ravel(), names):
        per_set = {s: finite(g[name]) for s, g in good.groupby("set", sort=False)}
        everything = np.concatenate([v for v in per_set.values()] + [np.zeros(0)])
        if everything.size == 0:
            ax.set_title(f"{name} (no values)")
            continue
        low, high = float(everything.min()), float(everything.max())
        bins = np.linspace(low, high if high > low else low + 1, 21)
        for set_name, values in per_set.items():
            ax.hist(values, bins=bins, alpha=0.5, density=True, label=f"{set_name} ({values.size})")
        ax.set_title(name)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
