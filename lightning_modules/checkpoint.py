"""Rebuild any family's module from a platform checkpoint alone (used by infer, realtime, web)."""
from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate

from lightning_modules.base import CHECKPOINT_KEY, PlatformModule


def load_module(ckpt_path: str | Path, map_location: str = "cpu") -> PlatformModule:
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; pass ckpt_path=<run dir>/checkpoints/last.ckpt")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    meta = ckpt.get(CHECKPOINT_KEY)
    if not meta or "model_cfg" not in meta:
        raise ValueError(f"{path} is not a musicplat checkpoint (no '{CHECKPOINT_KEY}' entry); "
                         "train it with train.py so it carries its model config")
    module = instantiate(meta["model_cfg"], **meta.get("model_kwargs", {}))
    module.load_state_dict(ckpt["state_dict"])
    module.platform_meta = {k: v for k, v in meta.items() if k != "rng"}
    return module.eval()
