"""What every family's LightningModule shares: optimizers from partial configs, a
self-describing checkpoint, exact-resume RNG state, and the inference entry point."""
from __future__ import annotations

import inspect
import random
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np
import torch

CHECKPOINT_KEY = "musicplat"


class PlatformModule(L.LightningModule):
    """Subclasses build their nets in __init__ and implement training/validation steps."""

    def __init__(self, optimizer: Callable | None = None, scheduler: Callable | None = None,
                 scheduler_interval: str = "step"):
        super().__init__()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        # filled by train.py: the model config and data-derived kwargs that rebuild this module
        self.platform_meta: dict[str, Any] = {}

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = self.optimizer_factory(params) if self.optimizer_factory else torch.optim.AdamW(params, lr=3e-4)
        if self.scheduler_factory is None:
            return opt
        kwargs = {}
        if "total_steps" in inspect.signature(self.scheduler_factory).parameters and \
                "total_steps" not in getattr(self.scheduler_factory, "keywords", {}):
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt, **kwargs),
                                                   "interval": self.scheduler_interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = dict(self.platform_meta)
        # exact resume: the RNG streams continue where they were (dropout, sampling)
        checkpoint[CHECKPOINT_KEY]["rng"] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                                             "python": random.getstate()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = dict(checkpoint.get(CHECKPOINT_KEY, {}))
        rng = meta.pop("rng", None)
        self.platform_meta = meta
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])

    def run_inference(self, cfg, out_dir: Path) -> dict[str, Any]:
        """The family's inference from infer.py (generation or scoring); returns output paths."""
        raise NotImplementedError(f"{type(self).__name__} has no inference entry point")
