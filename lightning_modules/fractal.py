"""Fractal MAR/AR generator family: bars -> beats -> steps -> notes on a 16th-note piano roll.

Training sums per-level losses with a config-selected `LossWeighting` (weights and sigmas are
logged per step); validation also samples a piece per batch (up to `val_sampling_batches`)
and counts failures in `val/sampling_failures` instead of stopping the run.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import symusic
import torch

from datamodules.midi_io import load_score, save_piano_roll_png
from datamodules.piano_roll import cut_window, piece_chroma, roll_to_score, score_to_roll
from datamodules.sources.pop909 import read_beats
from lightning_modules.base import PlatformModule
from lightning_modules.components.fractal import FractalGen, reference_values, regenerate_masks
from lightning_modules.components.loss_weighting import FixedWeighting, LossWeighting

log = logging.getLogger(__name__)
MAJOR_PROFILE = [1.0, 0.1, 0.6, 0.1, 0.8, 0.6, 0.1, 0.9, 0.1, 0.6, 0.1, 0.4]  # no chroma given: C major


class FractalModule(PlatformModule):
    def __init__(self, levels: list, output: dict, n_pitches: int, pitch_low: int, window_steps: int,
                 steps_per_beat: int = 4, beats_per_bar: int = 4, qpm: float = 120.0, velocity_bins: int = 32,
                 n_density: int = 16, duration_classes: int = 16,
                 loss_weighting: Callable[..., LossWeighting] | None = None, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, generation: dict | None = None,
                 val_sampling_batches: int = 1, level_specs: dict | None = None):
        super().__init__(optimizer, scheduler)
        levels = resolve_levels(levels, level_specs or {})
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "loss_weighting"])
        shared = dict(n_pitches=n_pitches, pitch_low=pitch_low, window_steps=window_steps, n_density=n_density,
                      velocity_bins=velocity_bins, duration_classes=duration_classes)
        self.root = FractalGen([dict(lv) for lv in levels], dict(output), shared)
        self.level_names = [lv["name"] for lv in levels] + [output.get("name", "notes")]
        self.weighting = loss_weighting(n_losses=len(self.level_names)) if loss_weighting \
            else FixedWeighting(len(self.level_names))
        self.generation = dict(generation or {})
        self.val_sampling_batches = val_sampling_batches
        self.val_sampling_failures = 0

    @property
    def chain(self) -> list[torch.nn.Module]:
        return self.root.chain()

    @property
    def level_units(self) -> list[int]:
        return [getattr(level, "unit", 1) for level in self.chain]

    # ---- training ----------------------------------------------------------------------------
    def level_losses(self, batch: dict) -> torch.Tensor:
        return torch.stack(self.root(batch["velocity"], batch["duration"], batch["chroma"]))  # (D,)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.level_losses(batch)
        total, info = self.weighting(losses, shared_params=self.root.generator.shared_parameters())
        self.weighting.observe(losses)
        bs = batch["velocity"].size(0)
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log("train/level_loss_sum", losses.sum(), prog_bar=True, batch_size=bs)
        for i, name in enumerate(self.level_names):
            self.log(f"train/loss_{name}", losses[i], batch_size=bs)
            self.log(f"train/weight_{name}", info["weights"][i], batch_size=bs)
            if "sigmas" in info:
                self.log(f"train/sigma_{name}", info["sigmas"][i], batch_size=bs)
        return total

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.weighting.after_optimizer_step()

    def on_train_epoch_end(self) -> None:
        self.weighting.on_epoch_end()

    def _eval_step(self, batch: dict, batch_idx: int, stage: str) -> None:
        losses = self.level_losses(batch)
        bs = batch["velocity"].size(0)
        self.log(f"{stage}/loss", losses.sum(), prog_bar=True, batch_size=bs)  # unweighted: comparable
        for i, name in enumerate(self.level_names):
            self.log(f"{stage}/loss_{name}", losses[i], batch_size=bs)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")
        if batch_idx < self.val_sampling_batches:
            self.validation_sample(batch, batch_idx)

    def validation_sample(self, batch: dict, batch_idx: int) -> None:
        """Sample one piece with the batch's chroma; an error is logged with the batch id and
        counted (val/sampling_failures), never raised: a sampling bug must not kill training."""
        try:
            levels = self.generate_levels(chroma=batch["chroma"][:1], seed=batch_idx)
            notes = float((levels[-1]["velocity"] > 0).sum())
            self.log("val/sample_notes", notes, batch_size=1)
        except Exception as err:
            self.val_sampling_failures += 1
            log.exception("validation sampling failed on batch %d (epoch %d): %r", batch_idx,
                          self.current_epoch, err)

    def on_validation_epoch_end(self) -> None:
        self.log("val/sampling_failures", float(self.val_sampling_failures))

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    # ---- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def generate_levels(self, n_samples: int = 1, chroma=None, reference: dict | None = None,
                        target_levels: list[int] | None = None, step_range: tuple[int, int] | None = None,
                        temperature: float | None = None, top_p: float | None = None, seed: int = 0,
                        use_cache: bool = True, progress=None) -> list[dict[str, torch.Tensor]]:
        """Top-down sampling -> per level {kind: (B, n, ...)} (the last: velocity/duration (B, T, P)).

        reference: {velocity, duration} (B|1, T, P) of a given piece; with target_levels (levels
        to sample, others kept) and/or step_range (inpaint [start, end) steps, context kept).
        chroma: (B|1, 12); default the reference's, else a C major profile.
        """
        was_training = self.training
        self.eval()
        dev = self.device
        gen = torch.Generator(device=dev).manual_seed(seed)
        t = self.hparams.window_steps
        refs = regen = None
        if reference is not None:
            vel = torch.as_tensor(reference["velocity"], device=dev).long()
            dur = torch.as_tensor(reference["duration"], device=dev).long()
            vel, dur = (x.expand(n_samples, -1, -1) if x.size(0) == 1 else x for x in (vel, dur))
            n_samples, t = vel.size(0), vel.size(1)
            refs = reference_values(self.chain, vel, dur)
            regen = regenerate_masks(self.chain, n_samples, t, target_levels, step_range, dev)
        elif target_levels is not None or step_range is not None:
            raise ValueError("target_levels / step_range need a reference piece to keep the rest of")
        if chroma is None:
            chroma = reference_chroma(refs[-1], self.hparams.pitch_low) if refs else torch.tensor([MAJOR_PROFILE])
        chroma = torch.as_tensor(chroma, dtype=torch.float, device=dev).reshape(-1, 12)
        chroma = chroma.expand(n_samples, -1) if chroma.size(0) == 1 else chroma
        sampling = dict(self.generation)
        sampling.update({k: v for k, v in dict(temperature=temperature, top_p=top_p).items() if v is not None})
        out = self.root.sample(chroma, t, refs, regen, temperature=sampling.get("temperature", 1.0),
                               top_p=sampling.get("top_p"), generator=gen, progress=progress, use_cache=use_cache)
        self.train(was_training)
        return out

    def to_score(self, velocity, duration) -> symusic.Score:
        return roll_to_score(np.asarray(velocity, dtype=np.uint8), np.asarray(duration, dtype=np.uint8).clip(0, 255),
                             self.hparams.steps_per_beat, self.hparams.pitch_low, self.hparams.qpm)

    def reference_from_midi(self, path: str | Path | symusic.Score, start_bar: int = 0) -> tuple[dict, symusic.Score]:
        """A MIDI file (or Score) -> one window {velocity, duration} (1, T, P) from bar `start_bar`.
        A POP909-style `beat_midi.txt` next to the file gives the beat grid, else the ticks do."""
        score = path if isinstance(path, symusic.Score) else load_score(path)
        hp = self.hparams
        beats = downbeats = None
        if not isinstance(path, symusic.Score) and (Path(path).parent / "beat_midi.txt").is_file():
            annotated = read_beats(Path(path).parent)
            beats, downbeats = annotated[:, 0], annotated[annotated[:, 2] > 0.5, 0]
        roll = score_to_roll(score, hp.steps_per_beat, hp.pitch_low, hp.n_pitches, beats, downbeats)
        start = roll.first_downbeat + start_bar * hp.steps_per_beat * hp.beats_per_bar
        vel, dur = cut_window(roll, start, hp.window_steps)
        return {"velocity": torch.from_numpy(vel.astype(np.int64))[None],
                "duration": torch.from_numpy(dur.astype(np.int64))[None]}, score

    def run_inference(self, cfg, out_dir: Path) -> dict[str, Any]:
        """infer.py: full sampling, or with `+fractal.reference=x.mid` target_levels resampling
        (`+fractal.target_levels=[2,3]`) / inpainting (`+fractal.inpaint_bars=[4,8]`);
        `+fractal.chroma_from=y.mid` takes the global chroma from another MIDI."""
        opts = dict(cfg.get("fractal") or {})
        reference = chroma = step_range = None
        if opts.get("reference"):
            reference, ref_score = self.reference_from_midi(opts["reference"], int(opts.get("start_bar", 0)))
            chroma = piece_chroma(ref_score)[None]
        if opts.get("chroma_from"):
            chroma = piece_chroma(load_score(opts["chroma_from"]))[None]
        if opts.get("inpaint_bars"):
            bar = self.hparams.steps_per_beat * self.hparams.beats_per_bar
            step_range = (int(opts["inpaint_bars"][0]) * bar, int(opts["inpaint_bars"][1]) * bar)
        targets = list(opts["target_levels"]) if opts.get("target_levels") is not None else None
        sampling = {k: v for k, v in dict(cfg.get("sampling") or {}).items() if v is not None}
        levels = self.generate_levels(n_samples=cfg.get("n_samples", 1), chroma=chroma, reference=reference,
                                      target_levels=targets, step_range=step_range,
                                      temperature=sampling.get("temperature"), top_p=sampling.get("top_p"),
                                      seed=cfg.get("seed", 0))
        return self.write_outputs(levels, Path(out_dir))

    def write_outputs(self, levels: list[dict], out_dir: Path) -> dict[str, list[str]]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, list[str]] = {"midi": [], "png": [], "levels": []}
        for i in range(levels[-1]["velocity"].size(0)):
            score = self.to_score(levels[-1]["velocity"][i].cpu(), levels[-1]["duration"][i].cpu())
            midi = out_dir / f"sample_{i}.mid"
            score.dump_midi(str(midi))
            paths["midi"].append(str(midi))
            if score.note_num():
                paths["png"].append(str(save_piano_roll_png(score, midi.with_suffix(".png"), f"fractal sample {i}")))
            arrays = {f"L{j}_{k}": v[i].cpu().numpy() for j, lv in enumerate(levels) for k, v in lv.items()}
            np.savez_compressed(out_dir / f"sample_{i}_levels.npz", **arrays)
            paths["levels"].append(str(out_dir / f"sample_{i}_levels.npz"))
        return paths

    def write_samples(self, out_dir: Path, n_samples: int = 2, seed: int = 0, **sampling: Any) -> list[Path]:
        """For callbacks.samples.GenerateSamples (token-only options are ignored)."""
        levels = self.generate_levels(n_samples=n_samples, seed=seed, temperature=sampling.get("temperature"),
                                      top_p=sampling.get("top_p"))
        return [Path(p) for p in self.write_outputs(levels, Path(out_dir))["midi"]]


def resolve_levels(levels: list, level_specs: dict) -> list[dict]:
    """Levels coarse to fine: each a dict of LevelGenerator kwargs or a name in level_specs
    (`model.levels=[beats]` on the command line gives a depth-2 model)."""
    out = []
    for level in levels:
        if isinstance(level, str):
            if level not in level_specs:
                raise KeyError(f"level {level!r} not in model.level_specs ({sorted(level_specs)})")
            level = {"name": level, **level_specs[level]}
        out.append(dict(level))
    if not out:
        raise ValueError("model.levels is empty: give at least one level above the note output")
    return out


def reference_chroma(final: dict, pitch_low: int) -> torch.Tensor:
    """(B, 12) chroma of reference rolls (duration-weighted, max 1)."""
    vel, dur = final["velocity"], final["duration"]
    weights = (dur.float() * (vel > 0)).sum(1)  # (B, P)
    pcs = (torch.arange(weights.size(1), device=weights.device) + pitch_low) % 12
    hist = torch.zeros(weights.size(0), 12, device=weights.device).index_add_(1, pcs, weights)
    return hist / hist.amax(1, keepdim=True).clamp(min=1e-9)
