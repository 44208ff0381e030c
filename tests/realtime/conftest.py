"""Fixtures of the realtime tests: a JACK server check and a tiny trained checkpoint.

The JACK tests use real ports: start a server first with `bash realtime/jack_setup.sh`
(CI's .ci/run does); they skip, saying so, only when no JACK server can be reached.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from datamodules.role_tokens import build_role_tokenizer
from datamodules.tokenizer import encode_score, tokenizer_to_json

CONF = str(Path(__file__).resolve().parents[2] / "conf")


@pytest.fixture(scope="session")
def jack():
    from realtime.ports import jack_server_running

    if not jack_server_running():
        pytest.skip(
            "no JACK server reachable: run `bash realtime/jack_setup.sh` to test through real MIDI ports"
        )
    return True


def role_tokenizer(use_tempos: bool = True):
    """The Music Transformer family's REMI tokenizer with role control tokens, as the runtime sees it."""
    return build_role_tokenizer(
        kind="REMI",
        pitch_range=[21, 109],
        beat_res={"0_4": 8, "4_12": 4},
        num_velocities=16,
        use_tempos=use_tempos,
        use_time_signatures=False,
    )


def synthetic_scores(n: int = 12, bars: int = 8, seed: int = 0) -> list[symusic.Score]:
    """Chords (one per bar, low) under an eighth-note line of chord tones: REMI-shaped data."""
    gen = torch.Generator().manual_seed(seed)
    roots = [0, 9, 5, 7, 4, 2]
    scores = []
    for i in range(n):
        score = symusic.Score(480)
        score.tempos.append(symusic.Tempo(0, 120.0))
        track = symusic.Track("piano")
        for bar in range(bars):
            root = 48 + roots[(i + bar) % len(roots)]
            chord = [root, root + 4, root + 7]
            for p in chord:
                track.notes.append(symusic.Note(bar * 1920, 1800, p, 70))
            for step in range(8):
                if torch.rand(1, generator=gen).item() < 0.2:
                    continue  # a rest
                pitch = chord[int(torch.randint(0, 3, (1,), generator=gen))] + 12 * int(
                    torch.randint(1, 3, (1,), generator=gen)
                )
                track.notes.append(symusic.Note(bar * 1920 + step * 240, 220, pitch, 90))
        score.tracks.append(track)
        scores.append(score)
    return scores


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A TokenLM (conf/model/token_lm.yaml, shrunk) trained for a few steps on synthetic REMI data
    and saved in the platform's checkpoint format (the module's own on_save_checkpoint), as
    train.py would: load_module rebuilds it from the file alone."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "data.seq_len=128",
                "model.net.d_model=48",
                "model.net.n_layers=2",
                "model.net.n_heads=2",
                "model.net.d_ff=96",
                "model.net.dropout=0.0",
            ],
        )
    tokenizer = instantiate(cfg.data.tokenizer)
    model_kwargs = {
        "vocab_size": len(tokenizer),
        "pad_id": tokenizer.pad_token_id,
        "bos_id": tokenizer["BOS_None"],
        "eos_id": tokenizer["EOS_None"],
        "tokenizer_json": tokenizer_to_json(tokenizer),
    }
    torch.manual_seed(0)
    model = instantiate(cfg.model, **model_kwargs)
    model.platform_meta = {
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "model_kwargs": model_kwargs,
        "target": cfg.model._target_,
    }
    windows = []
    for score in synthetic_scores():
        ids = [tokenizer["BOS_None"]] + encode_score(tokenizer, score).tolist()
        windows += [ids[s : s + 129] for s in range(0, len(ids) - 129, 64)]
    data = torch.tensor(windows)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and immune to oversubscription
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(40):
        batch = data[torch.randint(0, len(data), (8,))]
        loss = model.net.loss(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    path = tmp_path_factory.mktemp("realtime_model") / "tiny.ckpt"
    torch.save(checkpoint, path)
    return path
