"""Composing and running the platform's configs in tests, with tiny sizes on CPU."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# a model and data small enough for seconds on one CPU core
TINY = ["data.seq_len=64", "data.batch_size=4", "model.net.d_model=32", "model.net.n_layers=1",
        "model.net.n_heads=2", "model.net.d_ff=64",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
        "trainer.max_epochs=1", "data.source.limit=16"]


def compose_train(overrides: list[str], out_dir: Path, cache_dir: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.log_dir = str(out_dir / "logs")
        cfg.paths.cache_dir = str(cache_dir)
    return cfg


def run_cli(script: str, args: list[str], cache_dir: Path, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python <script> args` from the repo root like a user would; raise with its output."""
    full_env = {**os.environ, "MUSICPLAT_CACHE": str(cache_dir), "WANDB_MODE": "offline",
                "WANDB_SILENT": "true", **(env or {})}
    proc = subprocess.run([sys.executable, *script.split(), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc
