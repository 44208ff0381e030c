"""The fractal family in the studio: pieces of any length, regenerated window by window.

A piece is the note roll (T, P) plus every level's plan (what the model sampled, or the
summaries of a given piece). A job regenerates the tokens of `target_levels` (all by default)
that overlap [start, end) and keeps everything else exactly, plan included, by feeding the
piece as the sampler's reference (`FractalGen.sample` with per-level regenerate masks). Ranges
longer than the model's window are done in windows that each see the half window before them,
so a fresh 16-bar piece from a 4-bar model is a chain of continuations.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import symusic
import torch

from datamodules.piano_roll import piece_chroma, roll_chroma, score_to_roll
from lightning_modules.components.fractal import reference_values, regenerate_masks
from lightning_modules.fractal import MAJOR_PROFILE, FractalModule
from web.roll import fractal_roll
from web.schemas import GenerationRequest

log = logging.getLogger(__name__)

Emit = Callable[[dict], None]


class RequestError(ValueError):
    """A request this checkpoint cannot serve; the API answers 422 with the message."""


@dataclass
class Piece:
    velocity: np.ndarray  # (T, P) int64, 0 = no onset
    duration: np.ndarray  # (T, P) int64 steps
    levels: list[dict[str, np.ndarray]]  # per level above the notes: {kind: (T // unit, ...)}
    qpm: float

    def save(self, path: Path) -> None:
        arrays = {f"L{i}_{k}": v for i, lv in enumerate(self.levels) for k, v in lv.items()}
        np.savez_compressed(path, velocity=self.velocity, duration=self.duration, qpm=np.float64(self.qpm), **arrays)

    @classmethod
    def load(cls, path: Path, n_levels: int) -> Piece:
        with np.load(path) as data:
            levels = [{k.split("_", 1)[1]: data[k] for k in data.files if k.startswith(f"L{i}_")}
                      for i in range(n_levels)]
            return cls(data["velocity"], data["duration"], levels, float(data["qpm"]))


@dataclass
class FractalPlan:
    piece: Piece
    chroma: np.ndarray  # (12,)
    start: int
    end: int
    targets: list[int] | None
    seed: int
    sampling: dict
    notices: list[str] = field(default_factory=list)  # what the user should know, shown with the result


class FractalEngine:
    family = "fractal"

    def __init__(self, module: FractalModule, max_length_bars: int = 64):
        self.module = module.eval()
        hp = module.hparams
        self.chain, self.units, self.names = module.chain, module.level_units, list(module.level_names)
        self.window, self.pitch_low, self.n_pitches = hp.window_steps, hp.pitch_low, hp.n_pitches
        self.steps_per_beat, self.beats_per_bar = hp.steps_per_beat, hp.beats_per_bar
        self.bar = hp.steps_per_beat * hp.beats_per_bar
        self.coarse = max(self.units)
        self.max_steps = max_length_bars * self.bar

    def describe(self) -> dict:
        kinds = [list(lv.spec.kinds) for lv in self.chain[:-1]] + [["notes"]]
        levels = [{"index": i, "name": n, "unit": u, "kinds": k}
                  for i, (n, u, k) in enumerate(zip(self.names, self.units, kinds))]
        return {"family": self.family, "levels": levels, "window_bars": self.window // self.bar,
                "steps_per_beat": self.steps_per_beat, "beats_per_bar": self.beats_per_bar,
                "pitch_range": [self.pitch_low, self.pitch_low + self.n_pitches - 1], "midi_uses": ["chroma", "source"]}

    # ---- pieces ------------------------------------------------------------------------------
    def _length(self, steps: int) -> int:
        """Round up to the coarsest unit, at least one window."""
        return max(self.window, -(-steps // self.coarse) * self.coarse)

    def piece_from_roll(self, velocity: np.ndarray, duration: np.ndarray, qpm: float) -> Piece:
        t = self._length(velocity.shape[0])
        vel, dur = np.zeros((t, self.n_pitches), np.int64), np.zeros((t, self.n_pitches), np.int64)
        vel[:len(velocity)], dur[:len(duration)] = velocity[:t], duration[:t]
        refs = reference_values(self.chain, torch.from_numpy(vel)[None], torch.from_numpy(dur)[None])
        return Piece(vel, dur, [{k: v[0].numpy() for k, v in lv.items()} for lv in refs[:-1]], qpm)

    def piece_from_score(self, score: symusic.Score, steps: int | None, notices: list[str] | None = None) -> Piece:
        roll = score_to_roll(score, self.steps_per_beat, self.pitch_low, self.n_pitches)
        start = roll.first_downbeat
        end = start + min(steps or roll.n_steps - start, self.max_steps)
        if steps is None and roll.n_steps - start > self.max_steps:
            notice = (f"the uploaded MIDI has {-(-(roll.n_steps - start) // self.bar)} bars from its first "
                      f"downbeat; the first {self.max_steps // self.bar} were used (limits.max_length_bars)")
            log.warning(notice)
            if notices is not None:
                notices.append(notice)
        if roll.velocity[start:end].sum() == 0:
            raise RequestError(f"the uploaded MIDI has no notes in this model's pitch range "
                               f"{self.pitch_low}..{self.pitch_low + self.n_pitches - 1}")
        return self.piece_from_roll(roll.velocity[start:end], roll.duration[start:end], roll.qpm)

    def edited(self, piece: Piece, notes: list) -> Piece:
        """The piece with its notes replaced by `notes`; level plans are kept for the units whose
        notes did not change and re-summarised for the ones that did."""
        vel, dur = np.zeros_like(piece.velocity), np.zeros_like(piece.duration)
        for n in notes:
            p = n.pitch - self.pitch_low
            if 0 <= p < self.n_pitches and n.start < len(vel):
                vel[n.start, p], dur[n.start, p] = n.velocity, n.duration
        fresh = self.piece_from_roll(vel, dur, piece.qpm)
        changed_steps = ((vel != piece.velocity) | (dur != piece.duration)).any(1)  # (T,)
        for old, new, unit in zip(piece.levels, fresh.levels, self.units):
            changed = changed_steps.reshape(-1, unit).any(1)
            for k in new:
                new[k][~changed] = old[k][~changed]
        return fresh

    # ---- requests ----------------------------------------------------------------------------
    def prepare(self, req: GenerationRequest, upload: symusic.Score | None, upload_path: Path | None,
                source_dir: Path | None) -> FractalPlan:
        if req.midi_use == "conditioning" or req.max_new_tokens is not None or req.top_k is not None:
            raise RequestError("fractal checkpoints take midi_use=chroma|source, temperature and top_p "
                               "(conditioning / max_new_tokens / top_k are for token checkpoints)")
        if upload is not None and req.midi_use is None:
            raise RequestError("say what the uploaded MIDI is for: midi_use=chroma or midi_use=source")
        steps = req.length_bars * self.bar if req.length_bars else None
        if steps is not None and steps > self.max_steps:
            raise RequestError(f"length_bars={req.length_bars} is over the limit "
                               f"({self.max_steps // self.bar} bars, limits.max_length_bars)")
        source, notices = None, []
        if source_dir is not None:
            source = Piece.load(source_dir / "piece.npz", len(self.names) - 1)
            if req.source_notes is not None:
                source = self.edited(source, req.source_notes)
        elif upload is not None and req.midi_use == "source":
            source = self.piece_from_score(upload, steps, notices)
        if source is None and (req.region is not None or req.target_levels is not None):
            raise RequestError("region / target_levels regenerate part of a piece: pass source_job (a "
                               "finished job) or upload a MIDI with midi_use=source")
        if req.target_levels is not None and max(req.target_levels) >= len(self.names):
            raise RequestError(f"target_levels {req.target_levels}: this model has levels 0..{len(self.names) - 1} "
                               f"({', '.join(self.names)})")
        if source is None:
            t = self._length(steps or self.window)
            source = self.piece_from_roll(np.zeros((t, self.n_pitches), np.int64),
                                          np.zeros((t, self.n_pitches), np.int64), float(self.module.hparams.qpm))
        start, end = 0, len(source.velocity)
        if req.region is not None:
            start, end = req.region.start_step, min(req.region.end_step, end)
            if start >= end:
                raise RequestError(f"region starts at step {start}, past the piece's end ({end} steps)")
        if upload is not None and req.midi_use == "chroma":
            chroma = piece_chroma(upload)
        else:
            chroma = roll_chroma(source.velocity, source.duration, self.pitch_low)
        if not chroma.any():
            chroma = np.asarray(MAJOR_PROFILE, np.float32)
        sampling = dict(self.module.generation)
        sampling.update({k: v for k, v in {"temperature": req.temperature, "top_p": req.top_p}.items() if v is not None})
        return FractalPlan(source, chroma, start, end, req.target_levels, req.seed, sampling, notices)

    def windows(self, start: int, end: int, n_steps: int) -> list[tuple[int, int, int]]:
        """(window start, regenerate from, regenerate to) covering [start, end); each window
        starts on the coarsest unit and sees up to half a window of context before its part."""
        context = (self.window // 2) // self.coarse * self.coarse
        out, a = [], start
        while a < end:
            w0 = (max(a - context, 0) // self.coarse) * self.coarse
            w0 = min(w0, n_steps - self.window)
            b = min(end, w0 + self.window)
            out.append((w0, a, b))
            a = b
        return out

    @torch.no_grad()
    def execute(self, plan: FractalPlan, out_dir: Path, emit: Emit) -> dict:
        piece = plan.piece
        windows = self.windows(plan.start, plan.end, len(piece.velocity))
        gen = torch.Generator().manual_seed(plan.seed)
        chroma = torch.as_tensor(plan.chroma, dtype=torch.float).reshape(1, 12)
        index = {n: i for i, n in enumerate(self.names)}
        depth = len(self.names)
        for w, (w0, a, b) in enumerate(windows):
            def progress(level: str, step: int, total: int, w=w) -> None:
                i = index[level]
                emit({"type": "progress", "level": level, "level_index": i, "step": step, "total": total,
                      "window": w, "windows": len(windows),
                      "fraction": round((w + (i + step / max(total, 1)) / depth) / len(windows), 4)})

            refs = [{k: torch.as_tensor(v[w0 // u:(w0 + self.window) // u])[None] for k, v in lv.items()}
                    for lv, u in zip(piece.levels, self.units)]
            refs.append({"velocity": torch.as_tensor(piece.velocity[w0:w0 + self.window])[None],
                         "duration": torch.as_tensor(piece.duration[w0:w0 + self.window])[None]})
            regen = regenerate_masks(self.chain, 1, self.window, plan.targets, (a - w0, b - w0))
            out = self.module.root.sample(chroma, self.window, refs, regen,
                                          temperature=plan.sampling.get("temperature", 1.0),
                                          top_p=plan.sampling.get("top_p"), generator=gen, progress=progress)
            for i, (values, mask) in enumerate(zip(out, regen)):
                m = mask[0].numpy()  # (n,) tokens of this window that were sampled
                targets = piece.levels[i] if i < depth - 1 else {"velocity": piece.velocity, "duration": piece.duration}
                lo = w0 // self.units[i]
                for k, v in values.items():
                    view = targets[k][lo:lo + len(m)]
                    view[m] = v[0].numpy()[m].astype(view.dtype)
        summary = self.write(piece, out_dir, {"start_step": plan.start, "end_step": plan.end,
                                              "levels": plan.targets or list(range(depth))})
        return {**summary, "notices": plan.notices}

    def write(self, piece: Piece, out_dir: Path, changed: dict) -> dict:
        piece.save(out_dir / "piece.npz")
        score = self.module.to_score(piece.velocity.clip(0, 127), piece.duration.clip(0, 255))
        score.tempos = [symusic.Tempo(0, float(piece.qpm))]
        score.dump_midi(str(out_dir / "result.mid"))
        roll = fractal_roll(piece.velocity, piece.duration, piece.levels, self.names, self.units, self.pitch_low,
                            self.steps_per_beat, self.beats_per_bar, piece.qpm,
                            self.module.hparams.velocity_bins, changed)
        (out_dir / "roll.json").write_text(_json(roll))
        return {"family": self.family, "notes": len(roll["notes"]), "n_steps": roll["n_steps"],
                "bars": roll["n_steps"] // self.bar, "windows": len(self.windows(changed["start_step"],
                                                                                 changed["end_step"],
                                                                                 roll["n_steps"]))}

    def level_stack_png(self, job_dir: Path) -> bytes:
        """All levels of a result stacked (callbacks.fractal_viz), as PNG bytes."""
        from callbacks.fractal_viz import image_bytes, level_rolls, render_stack

        piece = Piece.load(job_dir / "piece.npz", len(self.names) - 1)
        rolls = level_rolls([*piece.levels, {"velocity": piece.velocity}], self.units, self.pitch_low)
        return image_bytes(render_stack(rolls, self.names, title="levels, coarse to fine"))


def _json(obj) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))
