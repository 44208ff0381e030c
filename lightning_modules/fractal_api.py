"""Python API of the fractal generator for UIs and notebooks.

    gen = FractalGenerator.from_checkpoint("logs/.../checkpoints/last.ckpt")
    result = gen.generate(seed=1, progress=lambda level, step, total: print(level, step, total))
    result.score.dump_midi("out.mid"); result.levels["beats"]["pitches"]   # (n_beats, P)
    gen.inpaint("song.mid", start_bar=4, end_bar=8)      # bars 4..7 new, the rest kept
    gen.resample("song.mid", target_levels=[2, 3])       # keep L0-L1 of the song, new L2-L3
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import symusic
import torch

from datamodules.midi_io import load_score
from datamodules.piano_roll import piece_chroma
from lightning_modules.checkpoint import load_module
from lightning_modules.fractal import FractalModule

ProgressFn = Callable[[str, int, int], None]  # (level name, step within the level, steps of the level)


@dataclass
class GenerationResult:
    score: symusic.Score
    levels: dict[str, dict[str, np.ndarray]]  # level name -> {kind: array}; "notes": velocity/duration (T, P)
    level_units: dict[str, int] = field(default_factory=dict)  # grid steps per token of each level


class FractalGenerator:
    def __init__(self, module: FractalModule):
        if not isinstance(module, FractalModule):
            raise TypeError(f"{type(module).__name__} is not a fractal checkpoint's module")
        self.module = module.eval()

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str = "cpu") -> FractalGenerator:
        return cls(load_module(path, map_location))

    @property
    def level_names(self) -> list[str]:
        return list(self.module.level_names)

    @property
    def bar_steps(self) -> int:
        return self.module.hparams.steps_per_beat * self.module.hparams.beats_per_bar

    def _results(self, levels: list[dict]) -> list[GenerationResult]:
        units = dict(zip(self.level_names, self.module.level_units))
        out = []
        for i in range(levels[-1]["velocity"].size(0)):
            arrays = {name: {k: v[i].cpu().numpy() for k, v in lv.items()} for name, lv in zip(self.level_names, levels)}
            notes = arrays[self.level_names[-1]]
            out.append(GenerationResult(self.module.to_score(notes["velocity"], notes["duration"]), arrays, units))
        return out

    def _chroma(self, chroma_from) -> np.ndarray | None:
        if chroma_from is None:
            return None
        if isinstance(chroma_from, (str, Path)):
            chroma_from = load_score(chroma_from)
        if isinstance(chroma_from, symusic.Score):
            return piece_chroma(chroma_from)[None]
        return np.asarray(chroma_from, dtype=np.float32).reshape(-1, 12)

    def _reference(self, piece, start_bar: int) -> tuple[dict, np.ndarray]:
        if isinstance(piece, dict):
            ref = {k: torch.as_tensor(v).reshape(1, *np.shape(v)[-2:]) for k, v in piece.items()}
            return ref, None
        ref, score = self.module.reference_from_midi(piece, start_bar)
        return ref, piece_chroma(score)[None]

    def generate(self, n_samples: int = 1, seed: int = 0, temperature: float | None = None,
                 top_p: float | None = None, chroma_from=None, use_cache: bool = True,
                 progress: ProgressFn | None = None) -> list[GenerationResult]:
        """Sample new pieces top-down. chroma_from: a MIDI path, a Score or a (12,) profile."""
        levels = self.module.generate_levels(n_samples, self._chroma(chroma_from), seed=seed,
                                             temperature=temperature, top_p=top_p, use_cache=use_cache,
                                             progress=progress)
        return self._results(levels)

    def inpaint(self, piece, start_bar: int, end_bar: int, from_bar: int = 0, n_samples: int = 1,
                seed: int = 0, temperature: float | None = None, top_p: float | None = None,
                progress: ProgressFn | None = None) -> list[GenerationResult]:
        """Regenerate bars [start_bar, end_bar) of the window starting at `from_bar` of piece
        (MIDI path, Score, or {velocity, duration} (T, P) arrays); everything else is kept."""
        reference, chroma = self._reference(piece, from_bar)
        steps = (start_bar * self.bar_steps, end_bar * self.bar_steps)
        levels = self.module.generate_levels(n_samples, chroma, reference, step_range=steps, seed=seed,
                                             temperature=temperature, top_p=top_p, progress=progress)
        return self._results(levels)

    def resample(self, piece, target_levels: list[int], from_bar: int = 0, n_samples: int = 1, seed: int = 0,
                 temperature: float | None = None, top_p: float | None = None,
                 progress: ProgressFn | None = None) -> list[GenerationResult]:
        """Keep the levels not in target_levels from piece, sample the others (e.g. [2, 3]:
        keep the bar and beat structure, new steps and notes)."""
        reference, chroma = self._reference(piece, from_bar)
        levels = self.module.generate_levels(n_samples, chroma, reference, target_levels=target_levels,
                                             seed=seed, temperature=temperature, top_p=top_p, progress=progress)
        return self._results(levels)
