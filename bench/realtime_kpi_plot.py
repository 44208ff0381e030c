"""Timeline figure of a realtime jam run: the first seconds as a piano roll (keyboard chords and
the runtime's answer at the DAW), TTFN and send jitter over the run, and the lead."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.realtime_kpi_metrics import chord_onsets, message_kind


def plot_timeline(records: dict, path: Path, zoom_s: float = 24.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kb, daw, rt = records["keyboard"], records["daw"], records["runtime"]
    t0 = kb.get("t0", 0.0)
    fig, axes = plt.subplots(3, 1, figsize=(14, 10))
    ax = axes[0]
    for c in chord_onsets(kb):
        if c["onset"] - t0 > zoom_s:
            break
        for p in c["pitches"]:
            ax.plot([c["onset"] - t0, c["onset"] - t0 + 0.2], [p, p], color="tab:blue", lw=3)
    open_at: dict[int, float] = {}
    for t, _, b in daw:
        kind = message_kind(b)
        if kind == "on":
            open_at[b[1]] = t
        elif kind == "off" and b[1] in open_at:
            start = open_at.pop(b[1])
            if start - t0 <= zoom_s:
                ax.plot([start - t0, t - t0], [b[1], b[1]], color="tab:red", lw=3)
    for u in rt.get("underruns", []):
        if u["time"] - t0 <= zoom_s:
            ax.axvline(u["time"] - t0, color="k", ls="--", lw=0.8)
    ax.set(
        title=f"first {zoom_s:.0f} s: keyboard chords (blue), runtime output at the DAW (red), "
        "underruns (dashed)",
        xlabel="s",
        ylabel="pitch",
    )
    sends = rt.get("sends", [])
    firsts = [s for s in sends if s["first"] and s["kind"] == "on"]
    ax = axes[1]
    onsets = np.asarray([c["onset"] for c in chord_onsets(kb)])
    prompts = {p["ctx"]: p for p in rt.get("prompts", [])}
    xs, ys = [], []
    for s in firsts:
        p = prompts.get(s["ctx"])
        if p is None:
            continue
        k = int(np.searchsorted(onsets, p["onset"] + 0.005, side="right")) - 1
        if k >= 0:
            xs.append(onsets[k] - t0)
            ys.append(1000 * (s["sent"] - onsets[k]))
    ax.scatter(xs, ys, s=6, label="TTFN at send (ms)")
    jit = [
        (s["sent"] - t0, 1000 * (s["sent"] - s["scheduled"]))
        for s in sends
        if s["kind"] in ("on", "off") and not s["first"]
    ]
    if jit:
        ax.scatter(*zip(*jit), s=2, color="tab:green", label="send jitter (ms)")
    ax.axhline(10, color="tab:blue", ls=":", lw=0.8)
    ax.axhline(2, color="tab:green", ls=":", lw=0.8)
    ax.set(title="TTFN per chord and send jitter over the run", xlabel="s", ylabel="ms")
    ax.legend(loc="upper right")
    ax = axes[2]
    lead = rt.get("lead", [])
    if lead:
        lt, lb = zip(*lead)
        ax.plot(np.asarray(lt) - t0, lb, lw=0.6)
    ax.set(title="lead: bars the model has decided ahead of now", xlabel="s", ylabel="bars")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
