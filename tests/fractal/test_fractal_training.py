"""Overfit on two real songs, validation-time sampling failures, visualisation, the API."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from callbacks.fractal_viz import level_rolls, render_stack, save_growth_gif
from datamodules.fractal_datamodule import FractalDataModule
from datamodules.sources.pop909 import Pop909Source
from lightning_modules.fractal_api import FractalGenerator
from tests.fractal.helpers import random_batch, tiny_module


def test_overfits_two_pop909_songs(shared_data, tmp_path):
    dm = FractalDataModule(Pop909Source(shared_data / "pop909"), str(tmp_path), window_bars=2, limit_files=2,
                           max_windows_per_song=1, train_on_all=True, batch_size=2)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    module = tiny_module(4, bars=2, n_pitches=88, pitch_low=21)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
    curve = []
    for _ in range(120):
        losses = module.level_losses(batch)
        opt.zero_grad()
        losses.sum().backward()
        opt.step()
        curve.append(float(losses.sum().detach()))
    first, last = curve[0], float(np.mean(curve[-10:]))
    assert last < 0.25 * first, (first, last)


def test_validation_sampling_failure_is_logged_and_counted(monkeypatch, caplog):
    module = tiny_module(2)
    batch = random_batch()
    module.validation_sample(batch, batch_idx=0)
    assert module.val_sampling_failures == 0

    def broken(*args, **kwargs):
        raise RuntimeError("sampler exploded")
    monkeypatch.setattr(module, "generate_levels", broken)
    with caplog.at_level(logging.ERROR):
        module.validation_sample(batch, batch_idx=7)
    assert module.val_sampling_failures == 1
    assert "batch 7" in caplog.text and "sampler exploded" in caplog.text


@pytest.mark.parametrize("bars", [1, 3])
def test_viz_stacks_levels_of_any_length(bars, tmp_path):
    module = tiny_module(4, bars=bars)
    levels = module.generate_levels(seed=0)
    one = [{k: v[0] for k, v in lv.items()} for lv in levels]
    one[1] = {k: v[:-1] for k, v in one[1].items()}  # a level one token short: padded, not mismatched
    rolls = level_rolls(one, module.level_units, module.hparams.pitch_low)
    assert [r.shape for r in rolls] == [(16 * bars, 24)] * 4
    assert all(0 <= r.min() and r.max() <= 1 for r in rolls)
    image = render_stack(rolls, module.level_names)
    assert image.ndim == 3 and image.shape[2] == 3
    gif = save_growth_gif(rolls, module.level_names, tmp_path / "growth.gif")
    from PIL import Image
    assert Image.open(gif).n_frames == 4


def test_api_generate_inpaint_resample_with_progress(tmp_path):
    module = tiny_module(4)
    api = FractalGenerator(module)
    seen = []
    results = api.generate(n_samples=2, seed=1, progress=lambda level, step, total: seen.append(level))
    assert len(results) == 2 and set(seen) == set(module.level_names)
    assert results[0].levels["notes"]["velocity"].shape == (32, 24)
    assert results[0].score.note_num() == int((results[0].levels["notes"]["velocity"] > 0).sum())
    ref = random_batch(batch=1, seed=3)
    piece = {"velocity": ref["velocity"][0].numpy(), "duration": ref["duration"][0].numpy()}
    out = api.inpaint(piece, start_bar=1, end_bar=2)[0]
    assert np.array_equal(out.levels["notes"]["velocity"][:16], piece["velocity"][:16])
    kept = api.resample(piece, target_levels=[3])[0]
    assert kept.levels["steps"]["pitches"].shape == (32, 24)


def test_trainer_run_logs_viz_to_tensorboard_and_counts_sampling(tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from callbacks.fractal_viz import FractalLevelViz

    module = tiny_module(3)
    data = [random_batch(seed=s) for s in range(2)]
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    viz = FractalLevelViz(str(tmp_path / "viz"), every_n_epochs=1)
    trainer = L.Trainer(max_epochs=1, logger=TensorBoardLogger(str(tmp_path), name="tb"), callbacks=[viz],
                        enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                        enable_model_summary=False)
    trainer.fit(module, loader, loader)
    assert viz.failures == 0
    assert {p.name for p in viz.written} >= {"epoch=000_levels.png", "epoch=000_growth.gif", "final_levels.png"}
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))
    assert trainer.callback_metrics["val/sampling_failures"] == 0
    assert "train/weight_notes" in trainer.callback_metrics
