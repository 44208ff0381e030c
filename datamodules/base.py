"""What every DataModule of the platform shares: one `_loader(split)` behind the three Lightning hooks."""
from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.windows import EpochShuffleSampler


class SplitDataModule(L.LightningDataModule):
    """Subclasses build `self.datasets[split]` in setup() and implement `_loader(split)`."""

    def _loader(self, name: str) -> DataLoader:
        raise NotImplementedError

    def _epoch_loader(self, dataset: Dataset, name: str, batch_size: int, num_workers: int, seed: int,
                      **kwargs) -> DataLoader:
        """Loader whose sampler carries the trainer's epoch: shuffling (and augmentation seeded by it)
        resumes exactly from a mid-run checkpoint."""
        return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                          sampler=EpochShuffleSampler(dataset, seed, shuffle=name == "train",
                                                      epoch_fn=self._current_epoch),
                          # own generator: creating iterators must not consume the global RNG
                          generator=torch.Generator().manual_seed(seed), **kwargs)

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
