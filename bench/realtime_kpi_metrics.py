"""KPIs of a realtime jam run from three records: what the keyboard sent, what the runtime
scheduled and sent, what the DAW received (all on CLOCK_MONOTONIC), plus JSON/markdown/PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DEAD_AIR_S = 0.18
TARGETS = {"ttfn_p50_ms": 10.0, "ttfn_p99_ms": 20.0, "jitter_p99_ms": 2.0, "underruns": 0}


def _stats(values) -> dict:
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


def message_kind(data: list[int]) -> str | None:
    status = data[0] & 0xF0
    if status == 0x90 and len(data) > 2 and data[2] > 0:
        return "on"
    if status == 0x80 or (status == 0x90 and len(data) > 2):
        return "off"
    if status == 0xB0:
        return "cc"
    return None


def chord_onsets(keyboard: dict) -> list[dict]:
    """Keyboard note-ons grouped by their target time: one entry per struck chord."""
    groups: dict[float, dict] = {}
    for sent, target, data in keyboard["sent"]:
        if message_kind(data) == "on":
            g = groups.setdefault(
                round(target, 6), {"onset": sent, "target": target, "pitches": []}
            )
            g["onset"] = min(g["onset"], sent)
            g["pitches"].append(data[1])
    return sorted(groups.values(), key=lambda g: g["onset"])


def align(sends: list[dict], daw: list, window_s: float = 0.1) -> dict[int, float]:
    """Index of each runtime note send -> DAW arrival time: the next DAW message of the same
    kind and pitch within window_s of the send (order-preserving; a lost message stays unmatched
    instead of shifting every later pair)."""
    notes = [(t, message_kind(b), b[1]) for t, _, b in daw if message_kind(b) in ("on", "off")]
    out, j = {}, 0
    for i, s in enumerate(sends):
        if s["kind"] not in ("on", "off"):
            continue
        while j < len(notes) and notes[j][0] < s["sent"] - 0.005:
            j += 1  # arrivals before this send belong to earlier sends (or to nothing)
        for k in range(j, len(notes)):
            if notes[k][0] > s["sent"] + window_s:
                break
            if notes[k][1] == s["kind"] and notes[k][2] == s["pitch"]:
                out[i], j = notes[k][0], k + 1
                break
    return out


def sounding_gaps(daw: list, start: float, end: float) -> list[tuple[float, float]]:
    """Silences (no output note sounding) between start and end, from the DAW record."""
    active: dict[int, int] = {}
    edges = []
    for t, _, b in daw:
        kind = message_kind(b)
        if kind == "on":
            active[b[1]] = active.get(b[1], 0) + 1
        elif kind == "off" and active.get(b[1]):
            active[b[1]] -= 1
        elif kind == "cc" and b[1] == 123:
            active.clear()
        edges.append((t, sum(active.values()) > 0))
    gaps, silent_since = [], start
    for t, sounding in edges:
        if t < start or t > end:
            if t > end:
                break
            silent_since = None if sounding else t
            continue
        if sounding and silent_since is not None:
            gaps.append((silent_since, t))
            silent_since = None
        elif not sounding and silent_since is None:
            silent_since = t
    if silent_since is not None and end > silent_since:
        gaps.append((silent_since, end))
    return gaps


def unclosed_notes(daw: list) -> tuple[int, bool]:
    """(note-ons never closed by a note-off or CC 123, whether CC 123 came after the last note)."""
    open_notes: dict[tuple[int, int], int] = {}
    unclosed, last_note_t, last_cc123 = 0, -1.0, -1.0
    for t, _, b in daw:
        kind, key = message_kind(b), (b[0] & 0x0F, b[1] if len(b) > 1 else -1)
        if kind == "on":
            open_notes[key] = open_notes.get(key, 0) + 1
            last_note_t = t
        elif kind == "off":
            if open_notes.get(key):
                open_notes[key] -= 1
            last_note_t = t
        elif kind == "cc" and b[1] == 123:
            last_cc123 = t
            for k in [k for k in open_notes if k[0] == key[0]]:
                open_notes[k] = 0
    unclosed = sum(open_notes.values())
    return unclosed, last_cc123 >= last_note_t and last_cc123 > 0


def compute_kpis(records: dict) -> dict:
    kb, daw, rt = records["keyboard"], records["daw"], records["runtime"]
    sends = rt.get("sends", [])
    arrival = align(sends, daw)
    chords = chord_onsets(kb)
    prompts = rt.get("prompts", [])
    onsets = np.asarray([c["onset"] for c in chords])

    ttfn, ttfn_internal, grid_late, prefill, missed = [], [], [], [], 0
    ttfn_fed, ttfn_hit, fed_tokens = [], [], []  # by prefill: some tokens through the net / none
    first_send = {s["ctx"]: i for i, s in enumerate(sends) if s["first"] and s["kind"] == "on"}
    for p in prompts:
        k = int(np.searchsorted(onsets, p["onset"] + 0.005, side="right")) - 1
        if k < 0 or p["onset"] - onsets[k] > 0.05:
            continue  # not caused by a keyboard chord (e.g. a trigger)
        i = first_send.get(p["ctx"])
        if i is None or i not in arrival:
            missed += 1
            continue
        ttfn.append(1000 * (arrival[i] - onsets[k]))
        ttfn_internal.append(1000 * (sends[i]["sent"] - p["onset"]))
        if "grid_time" in p:
            grid_late.append(1000 * (sends[i]["sent"] - p["grid_time"]))
        if "prompted" in p:
            prefill.append(1000 * (p["prompted"] - p["committed"]))
        if "prefill_tokens" in p:  # 0: the prompt cache held the whole prompt
            fed_tokens.append(p["prefill_tokens"])
            (ttfn_fed if p["prefill_tokens"] else ttfn_hit).append(ttfn[-1])

    timed = [
        s for s in sends if s["kind"] in ("on", "off") and not (s["first"] and s["kind"] == "on")
    ]
    jitter = [1000 * (s["sent"] - s["scheduled"]) for s in timed]
    arrival_late = [
        1000 * (arrival[i] - s["scheduled"])
        for i, s in enumerate(sends)
        if i in arrival and s["kind"] in ("on", "off") and not s["first"]
    ]

    lead = rt.get("lead", [])
    steady = []
    starts = [(p["committed"], 60.0 / p.get("bpm", 120)) for p in prompts]
    for t, bars in lead:
        k = int(np.searchsorted([s for s, _ in starts], t, side="right")) - 1
        if k >= 0 and t - starts[k][0] >= starts[k][1] * 4:  # a bar after the prompt: refilled
            steady.append(bars)

    first_out = min(
        (arrival[i] for i, s in enumerate(sends) if s["kind"] == "on" and i in arrival),
        default=None,
    )
    last_in = max((s for s, _, _ in kb["sent"]), default=0.0)
    underrun_times = [u["time"] for u in rt.get("underruns", [])]
    gaps = sounding_gaps(daw, first_out, last_in) if first_out else []
    long_gaps = [(a, b) for a, b in gaps if b - a >= DEAD_AIR_S]
    lead_arr = np.asarray(lead) if lead else np.zeros((0, 2))

    commits = np.asarray([p["committed"] for p in prompts])

    def intended(a: float, b: float) -> bool:
        """The model had decided the silence: it was ahead of now throughout (a new context's
        first 50 ms, before its first note, are its TTFN, not a decision) and no underrun."""
        if not len(lead_arr):
            return False
        inside = lead_arr[(lead_arr[:, 0] >= a) & (lead_arr[:, 0] <= b)]
        k = np.searchsorted(commits, inside[:, 0], side="right") - 1
        since = inside[:, 0] - np.where(k >= 0, commits[np.maximum(k, 0)], -np.inf)
        judged = inside[since > 0.05]
        return (
            len(judged) > 0
            and bool((judged[:, 1] > 0).all())
            and not any(a <= u <= b for u in underrun_times)
        )

    dead = [(a, b) for a, b in long_gaps if not intended(a, b)]
    unclosed, cc123_last = unclosed_notes(daw)
    counts = rt.get("counts", {})
    wall = rt.get("wall_s") or 1.0
    cpu_peak = max((sum(s.values()) for s in records.get("cpu_samples", [])), default=None)
    worker_errors = counts.get("worker_errors", 0)
    kpis = {
        "ttfn_ms": _stats(ttfn),
        "ttfn_internal_ms": _stats(ttfn_internal),
        "first_note_grid_lateness_ms": _stats(grid_late),
        "prefill_ms": _stats(prefill),
        "prefill_tokens": _stats(fed_tokens),
        "ttfn_with_prefill_ms": _stats(ttfn_fed),
        "ttfn_prompt_cache_hit_ms": _stats(ttfn_hit),
        "jitter_ms": _stats(jitter),
        "arrival_minus_scheduled_ms": _stats(arrival_late),
        "dead_air": {
            "count": len(dead),
            "total_s": float(sum(b - a for a, b in dead)),
            "intended_rests": len(long_gaps) - len(dead),
            "threshold_s": DEAD_AIR_S,
        },
        "underruns": counts.get("underruns", 0),
        "fallback_notes": counts.get("fallback_notes", 0),
        "lead_bars": {
            "steady_min": min(steady) if steady else None,
            "steady_mean": float(np.mean(steady)) if steady else None,
            "mean": float(lead_arr[:, 1].mean()) if len(lead_arr) else None,
        },
        "chords_played": len(chords),
        "prompts": len(prompts),
        "chords_without_answer": missed,
        "notes_out": counts.get("sent_on", 0),
        "notes_received": sum(1 for _, _, b in daw if message_kind(b) == "on"),
        "unmatched_sends": sum(1 for s in sends if s["kind"] in ("on", "off")) - len(arrival),
        "jack_xruns": None,
        "unclosed_notes": unclosed,
        "all_notes_off_at_end": cc123_last,
        "late_dropped": counts.get("late_dropped", 0),
        "input_ignored": rt.get("input_ignored", {}),
        "midi_clock_ticks": counts.get("midi_clock_ticks", 0),
        "max_loop_gap_ms": rt.get("max_loop_gap_ms"),
        "max_loop_gap_at_s": (rt["max_loop_gap_at"] - kb.get("t0", 0.0))
        if rt.get("max_loop_gap_at")
        else None,
        "input_ended_at_s": last_in - kb.get("t0", 0.0),
        "worker_errors": worker_errors,
        "exit_code": records.get("exit_code"),
        "cpu_percent": {
            "runtime_loop": 100 * rt.get("runtime_cpu_s", 0) / wall,
            "worker": 100 * rt.get("worker", {}).get("cpu_s", 0) / wall,
            "peak_total": cpu_peak,
        },
        "worker": rt.get("worker", {}),
        "wall_s": rt.get("wall_s"),
    }
    kpis["crash_free"] = kpis["exit_code"] == 0 and worker_errors == 0 and bool(rt)
    kpis["stall_free"] = (kpis["max_loop_gap_ms"] or 0) < 100
    t = kpis["ttfn_ms"]
    kpis["targets"] = {
        "ttfn_p50_ms": {
            "target": TARGETS["ttfn_p50_ms"],
            "value": t["p50"],
            "pass": t["p50"] is not None and t["p50"] <= TARGETS["ttfn_p50_ms"],
        },
        "ttfn_p99_ms": {
            "target": TARGETS["ttfn_p99_ms"],
            "value": t["p99"],
            "pass": t["p99"] is not None and t["p99"] <= TARGETS["ttfn_p99_ms"],
        },
        "jitter_p99_ms": {
            "target": TARGETS["jitter_p99_ms"],
            "value": kpis["jitter_ms"]["p99"],
            "pass": kpis["jitter_ms"]["p99"] is not None
            and kpis["jitter_ms"]["p99"] <= TARGETS["jitter_p99_ms"],
        },
        "underruns": {"target": 0, "value": kpis["underruns"], "pass": kpis["underruns"] == 0},
        "crash_and_stall_free": {
            "target": True,
            "value": kpis["crash_free"] and kpis["stall_free"],
            "pass": kpis["crash_free"] and kpis["stall_free"],
        },
    }
    return kpis


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def markdown(kpis: dict) -> str:
    run = kpis.get("run", {})
    rows = [
        ("TTFN (chord onset -> first note at the DAW)", kpis["ttfn_ms"], "ms"),
        ("  of which in the runtime (input -> send)", kpis["ttfn_internal_ms"], "ms"),
        ("  worker prefill (prompt -> first note sampled)", kpis["prefill_ms"], "ms"),
        ("  tokens put through the net per prompt", kpis.get("prefill_tokens", {"n": 0}), "tokens"),
        ("TTFN of prompts with a prefill", kpis.get("ttfn_with_prefill_ms", {"n": 0}), "ms"),
        ("TTFN of prompts held whole by the prompt cache", kpis.get("ttfn_prompt_cache_hit_ms", {"n": 0}), "ms"),
        ("first note lateness vs its grid time", kpis["first_note_grid_lateness_ms"], "ms"),
        ("jitter: sent - scheduled", kpis["jitter_ms"], "ms"),
        ("DAW arrival - scheduled", kpis["arrival_minus_scheduled_ms"], "ms"),
    ]
    lines = [
        f"# Realtime jam KPIs: {run.get('tag', '')}",
        "",
        f"{run.get('minutes', '?')} min at {run.get('bpms', '?')} bpm, overrides {run.get('overrides', [])}, "
        f"model {kpis['worker'].get('family', '?')} via {kpis['worker'].get('backend', '?')}, "
        f"load average after {tuple(round(x, 2) for x in run.get('loadavg_after', ()))}",
        "",
        "| latency | n | p50 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} ({unit}) | {s['n']} | {_fmt(s.get('p50'))} | {_fmt(s.get('p99'))} | {_fmt(s.get('max'))} |"
        for name, s, unit in rows
    ]
    lead, dead, cpu = kpis["lead_bars"], kpis["dead_air"], kpis["cpu_percent"]
    lines += [
        "",
        "| KPI | value |",
        "|---|---|",
        f"| chords played / prompts / without answer | {kpis['chords_played']} / {kpis['prompts']} / "
        f"{kpis['chords_without_answer']} |",
        f"| note-ons sent / received; note messages sent but never received | {kpis['notes_out']} / "
        f"{kpis['notes_received']}; {kpis['unmatched_sends']} |",
        f"| dead air >= {int(dead['threshold_s'] * 1000)} ms (count, total s) | {dead['count']}, "
        f"{dead['total_s']:.2f} (intended rests: {dead['intended_rests']}) |",
        f"| underruns / fallback notes | {kpis['underruns']} / {kpis['fallback_notes']} |",
        f"| lead (bars): steady min / steady mean / mean | {_fmt(lead['steady_min'])} / "
        f"{_fmt(lead['steady_mean'])} / {_fmt(lead['mean'])} |",
        f"| late notes dropped / JACK xruns during the run | {kpis['late_dropped']} / "
        f"{_fmt(kpis.get('jack_xruns'))} |",
        f"| unclosed notes / all-notes-off at end | {kpis['unclosed_notes']} / {kpis['all_notes_off_at_end']} |",
        f"| crash-free / max loop gap (ms, at s; input ended at s) | {kpis['crash_free']} / "
        f"{_fmt(kpis['max_loop_gap_ms'])} at {_fmt(kpis['max_loop_gap_at_s'])}; "
        f"{_fmt(kpis['input_ended_at_s'])} |",
        f"| CPU % of a core: timing loop / worker / peak total | {cpu['runtime_loop']:.1f} / "
        f"{cpu['worker']:.1f} / {_fmt(cpu['peak_total'])} |",
        f"| input ignored (by type) | {kpis['input_ignored']} |",
        "",
        "| target | value | pass |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} {'is' if isinstance(t['target'], bool) else '<='} {t['target']} | {_fmt(t['value'])} | "
        f"{'yes' if t['pass'] else 'NO'} |"
        for name, t in kpis["targets"].items()
    ]
    return "\n".join(lines) + "\n"


def write_reports(kpis: dict, records: dict, out_dir: Path, tag: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"realtime_kpi_{tag}.json").write_text(json.dumps(kpis, indent=1))
    (out_dir / f"realtime_kpi_{tag}.md").write_text(markdown(kpis))
    from bench.realtime_kpi_plot import plot_timeline

    plot_timeline(records, out_dir / f"realtime_kpi_{tag}.png")
