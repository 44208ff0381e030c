"""New random slice boundaries every epoch for DataModules that slice long sequences.

Calls `datamodule.regenerate_slices(epoch)` for the upcoming epoch (at fit start for the first
or resumed epoch, then after each training epoch). Pair it with
`trainer.reload_dataloaders_every_n_epochs=1`: the number of slices, hence batches, can change.
"""
from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger(__name__)


class SliceRegeneration(L.Callback):
    def __init__(self):
        self.calls: list[int] = []

    def _regenerate(self, trainer, epoch: int) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "regenerate_slices"):
            log.info("slice regeneration: the datamodule has no regenerate_slices(); nothing to do")
            return
        dm.regenerate_slices(epoch)
        self.calls.append(epoch)

    def on_fit_start(self, trainer, pl_module):
        self._regenerate(trainer, trainer.current_epoch)

    def on_train_epoch_end(self, trainer, pl_module):
        self._regenerate(trainer, trainer.current_epoch + 1)
