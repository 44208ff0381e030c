"""A tiny fractal checkpoint (tests/fractal/helpers sizes, trained a few steps) and a tiny
Music Transformer checkpoint, both in the platform's self-describing format, plus the app."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import symusic
import torch
from fastapi.testclient import TestClient
from hydra.utils import instantiate

from tests.fractal.helpers import DEPTHS, N_PITCHES, OUTPUT, PITCH_LOW, SPECS, random_batch
from web.app import create_app
from web.engines import ModelRegistry
from web.jobs import JobManager

BARS = 2  # the tiny model's window
FRACTAL_CFG = {"_target_": "lightning_modules.fractal.FractalModule", "levels": DEPTHS[4], "level_specs": SPECS,
               "output": OUTPUT, "n_pitches": N_PITCHES, "pitch_low": PITCH_LOW, "window_steps": 16 * BARS,
               "velocity_bins": 8, "n_density": 6, "duration_classes": 4,
               "loss_weighting": {"_target_": "lightning_modules.components.loss_weighting.FixedWeighting",
                                  "_partial_": True}}


def save_checkpoint(module, model_cfg: dict, kwargs: dict, path: Path) -> Path:
    """What train.py writes: weights + the config that rebuilds the module (load_module)."""
    module.platform_meta = {"model_cfg": model_cfg, "model_kwargs": kwargs, "target": model_cfg["_target_"]}
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def fractal_ckpt(tmp_path_factory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    module = instantiate(FRACTAL_CFG)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
    batches = [random_batch(batch=4, bars=BARS, seed=s) for s in range(4)]
    for step in range(40):  # enough for a plausible note density (silence is a bad test subject)
        loss = module.level_losses(batches[step % 4]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return save_checkpoint(module, FRACTAL_CFG, {}, tmp_path_factory.mktemp("web_models") / "fractal.ckpt")


@pytest.fixture(scope="session")
def mt_ckpt(tmp_path_factory) -> Path:
    """An untrained tiny role-conditioned Music Transformer (tests/music_transformer sizes)."""
    from datamodules.role_tokens import build_role_tokenizer, control_ids
    from datamodules.tokenizer import tokenizer_to_json
    from tests.music_transformer.test_lora import NET

    tok = build_role_tokenizer(kind="REMI", use_time_signatures=False, use_tempos=False)
    ids = control_ids(tok)
    kwargs = {"vocab_size": len(tok), "pad_id": ids.pad, "bos_id": ids.bos, "eos_id": ids.eos,
              "tokenizer_json": tokenizer_to_json(tok)}
    cfg = {"_target_": "lightning_modules.music_transformer.MusicTransformerLM", "net": NET,
           "generation": {"max_new_tokens": 48, "temperature": 1.0, "top_p": 0.95}}
    torch.manual_seed(0)
    module = instantiate(cfg, **kwargs)
    return save_checkpoint(module, cfg, kwargs, tmp_path_factory.mktemp("web_models") / "mt.ckpt")


def chord_midi(path: Path, bars: int = 2, pitches=(60, 64, 67)) -> Path:
    """A C major chord per beat: a real, small conditioning / source MIDI."""
    score = symusic.Score(480)
    track = symusic.Track("chords", 0, False)
    for beat in range(4 * bars):
        for p in pitches:
            track.notes.append(symusic.Note(beat * 480, 400, p + (beat // 4) * 2, 70 + beat))
    score.tracks.append(track)
    score.tempos.append(symusic.Tempo(0, 100.0))
    score.dump_midi(str(path))
    return path


@pytest.fixture(scope="session")
def registry(fractal_ckpt, mt_ckpt) -> ModelRegistry:
    return ModelRegistry(default=str(fractal_ckpt), models={"mt": str(mt_ckpt)}, preload=True,
                         max_length_bars=8, max_new_tokens=256)


@pytest.fixture
def make_client(registry, tmp_path):
    """make_client(**JobManager kwargs) -> a TestClient on a fresh job root (lifespan started)."""
    clients = []

    def make(**job_kwargs) -> TestClient:
        jobs = JobManager(tmp_path / "jobs", **{"max_concurrent": 1, "max_queued": 4, **job_kwargs})
        client = TestClient(create_app(registry, jobs, limits={"max_upload_bytes": 20_000}, poll_s=0.01))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def wait_done(client: TestClient, job_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get(f"/jobs/{job_id}").json()
        if info["status"] in ("succeeded", "failed"):
            return info
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {info}")
