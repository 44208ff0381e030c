"""Training throughput in tokens (or items) per second, logged as train/tokens_per_s."""
from __future__ import annotations

import time

import lightning as L
import torch


def count_tokens(batch) -> int:
    """Non-padding target tokens of a token batch; batch size for anything else."""
    if isinstance(batch, dict) and "labels" in batch:
        return int((batch["labels"] != -100).sum())
    if isinstance(batch, dict):
        first = next(iter(batch.values()))
        return int(first.size(0)) if torch.is_tensor(first) else len(first)
    return len(batch)


class TokenThroughput(L.Callback):
    def __init__(self, log_every_n_steps: int = 10):
        self.log_every = log_every_n_steps
        self._tokens, self._start = 0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._start is None:
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._tokens += count_tokens(batch) * trainer.world_size
        if (batch_idx + 1) % self.log_every == 0:
            elapsed = time.perf_counter() - self._start
            pl_module.log("train/tokens_per_s", self._tokens / max(elapsed, 1e-9), prog_bar=True,
                          rank_zero_only=True)
            self._tokens, self._start = 0, None

    def on_train_epoch_end(self, trainer, pl_module):
        self._tokens, self._start = 0, None  # validation time is not training time
