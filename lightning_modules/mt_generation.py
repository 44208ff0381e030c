"""Conditioned generation of a whole part from a conditioning MIDI (infer.py's MT path).

The conditioning's bars (repeated when fewer than requested) are cut into chunks that fit half
the model's context; each chunk is prompted as in training (BOS ROLE TEMPO <bars> COND_SEP)
and answered with exactly its number of bars, so chunks concatenate on the bar grid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import symusic

from datamodules.midi_io import load_score, save_piano_roll_png
from datamodules.role_tokens import split_bars
from datamodules.roles import flatten_tempo
from datamodules.tokenizer import decode_ids, encode_score


def plan_chunks(bar_lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive (first, end) bar ranges whose token counts fit `budget` (>= 1 bar each)."""
    chunks, start = [], 0
    while start < len(bar_lengths):
        end, used = start, 0
        while end < len(bar_lengths) and (end == start or used + bar_lengths[end] <= budget):
            used += bar_lengths[end]
            end += 1
        chunks.append((start, end))
        start = end
    return chunks


def fit_bars(ids: list[int], bar_id: int, n_bars: int) -> list[int]:
    """Exactly n_bars bars: starts with a Bar, extra bars cut, missing bars appended empty."""
    if not ids or ids[0] != bar_id:
        ids = [bar_id] + list(ids)
    bars = split_bars(np.asarray(ids, dtype=np.int64), bar_id)[:n_bars]
    bars += [np.array([bar_id])] * (n_bars - len(bars))
    return np.concatenate(bars).astype(int).tolist()


def named(score: symusic.Score, name: str, program: int, tempo: float) -> symusic.Score:
    score.tempos = [symusic.Tempo(0, float(tempo))]
    for track in score.tracks:
        track.name, track.program = name, program
    return score


def write_conditioned(module, cfg, out_dir: Path) -> dict[str, Any]:
    tok, ctrl = module.tokenizer, module.controls
    path = Path(cfg.conditioning)
    score = load_score(path)  # MidiSkip names the file and the reason
    tempo = float(cfg.get("tempo") or flatten_tempo(score.copy()))
    cond_bars = split_bars(encode_score(tok, score), ctrl.bar)
    if not cond_bars:
        raise ValueError(f"{path}: no notes the tokenizer can encode (pitch range / empty tracks)")
    n_bars = int(cfg.get("n_bars") or len(cond_bars))
    bars = [cond_bars[i % len(cond_bars)] for i in range(n_bars)]  # loop a short progression
    role = cfg.get("role") or module.generation.get("role", "lead")
    head = [ctrl.bos, ctrl.role(role), ctrl.tempo(tempo)]
    primer: list[int] = []
    if cfg.get("primer"):
        limit = int(cfg.get("primer_max_tokens", 64))
        primer = [int(i) for i in encode_score(tok, load_score(cfg.primer))[:limit]]
    overrides = {k: v for k, v in dict(cfg.get("sampling") or {}).items() if v is not None}
    sampling = {**module.generation, **overrides}
    sampling.pop("role", None)
    n_samples = int(cfg.get("n_samples", 1))
    budget = module.decoder.max_len // 2 - len(head) - 1 - len(primer)
    leads: list[list[int]] = [[] for _ in range(n_samples)]
    for index, (first, end) in enumerate(plan_chunks([len(b) for b in bars], budget)):
        prompt = head + np.concatenate(bars[first:end]).astype(int).tolist() + [ctrl.sep]
        start = primer if index == 0 else []
        primer_bars = sum(int(t == ctrl.bar) for t in start)
        outs = module.generate_conditioned([prompt + start] * n_samples, end - first,
                                           seed=int(cfg.get("seed", 0)) + index,
                                           primer_bars=[primer_bars] * n_samples, **sampling)
        for row, out in enumerate(outs):
            leads[row] += fit_bars(start + out, ctrl.bar, end - first)
    cond_ids = np.concatenate(bars).astype(int).tolist()
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"lead": [], "combined": [], "png": [], "lead_notes": [], "n_bars": n_bars,
                              "tempo": tempo, "role": role, "conditioning": str(path)}
    program = int(cfg.get("lead_program", 0))
    for i, ids in enumerate(leads):
        lead = named(decode_ids(tok, ids), role.upper(), program, tempo)
        combined = named(decode_ids(tok, cond_ids), "CONDITIONING", 0, tempo)
        combined.tracks.extend(t.copy() for t in lead.tracks)
        result["lead_notes"].append(lead.note_num())
        for kind, part in (("lead", lead), ("combined", combined)):
            midi = out_dir / f"{kind}_{i}.mid"
            part.dump_midi(str(midi))
            result[kind].append(str(midi))
        if combined.note_num():
            result["png"].append(str(save_piano_roll_png(combined, out_dir / f"combined_{i}.png",
                                                         title=f"{role} over {path.name} ({i})")))
    return result
