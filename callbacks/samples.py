"""At the end of fit, the trained model writes sample MIDI + piano-roll PNGs for a listen and a look."""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)


class GenerateSamples(L.Callback):
    def __init__(self, out_dir: str, n_samples: int = 2, max_new_tokens: int = 256,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = 0.95,
                 seed: int = 0):
        self.out_dir = Path(out_dir)
        self.n_samples, self.seed = n_samples, seed
        self.sampling = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
        self.written: list[Path] = []

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not hasattr(pl_module, "write_samples"):
            return
        self.written = pl_module.write_samples(self.out_dir, self.n_samples, seed=self.seed, **self.sampling)
        log.info("wrote %d samples to %s", len(self.written), self.out_dir)
