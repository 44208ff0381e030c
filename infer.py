"""Load any platform checkpoint and run its family's inference (generation or scoring).

    python infer.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt n_samples=4
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from lightning_modules.checkpoint import load_module

log = logging.getLogger("infer")


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> dict:
    L.seed_everything(cfg.seed)
    module = load_module(cfg.ckpt_path)
    outputs = module.run_inference(cfg, Path(cfg.out_dir))
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out_dir) / "outputs.json").write_text(json.dumps(outputs, indent=1))
    print("\n".join(f"{k}: {v}" for k, v in outputs.items()), flush=True)
    return outputs


if __name__ == "__main__":
    main()
