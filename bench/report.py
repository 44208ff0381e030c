"""Every benchmark writes bench/results/<name>.json and a markdown table <name>.md."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],  # other jobs skew timings
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}


def markdown_table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for row in rows for k in row))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, rows: list[dict], notes: str = "", out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = machine()
    (out_dir / f"{name}.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=1))
    text = f"# {name}\n\n{notes}\n\n{markdown_table(rows)}\n\nmachine: {meta}\n"
    (out_dir / f"{name}.md").write_text(text)
    print(text)
    return out_dir / f"{name}.md"
