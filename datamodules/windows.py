"""Token windows over cached files, re-sliced every epoch, and an epoch-seeded shuffling sampler."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

IGNORE_INDEX = -100


class TokenWindowDataset(Dataset):
    """Fixed-length next-token windows over files stored back to back in a memmap.

    Each file is read as [BOS] + ids + [EOS]. A file of n tokens gives ceil(n / stride) windows.
    With `jitter=True` every epoch shifts each file's window starts back by a new random offset
    (deterministic in (seed, epoch, file)), so training sees fresh slice boundaries each epoch.
    Items are addressed as (epoch, index) — see EpochShuffleSampler — or by a plain index (epoch 0).
    """

    def __init__(self, tokens_path: Path | str, files: list[tuple[int, int]], seq_len: int,
                 bos_id: int, eos_id: int, pad_id: int, stride: int | None = None,
                 jitter: bool = False, augment: Callable | None = None, seed: int = 0):
        self.tokens_path, self.files, self.seq_len = Path(tokens_path), files, seq_len
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.stride = stride or seq_len
        self.jitter, self.augment, self.seed = jitter, augment, seed
        # +1 window per file when jittering: starts move back by up to a stride, the end stays covered
        counts = [max(1, math.ceil((length + 2 - seq_len - 1) / self.stride) + 1 + int(jitter))
                  for _, length in files]
        self.cum = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._ids = None  # opened lazily, once per worker process

    def __len__(self) -> int:
        return int(self.cum[-1])

    def _memmap(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.memmap(self.tokens_path, dtype=np.int32, mode="r")
        return self._ids

    def window(self, index: int, epoch: int = 0) -> np.ndarray:
        """The raw seq_len+1 ids of window `index` in `epoch` (padded with PAD at a file's end)."""
        file_idx = int(np.searchsorted(self.cum, index, side="right") - 1)
        offset, length = self.files[file_idx]
        span = length + 2  # with BOS and EOS
        start = (index - self.cum[file_idx]) * self.stride
        if self.jitter:
            rng = np.random.default_rng([self.seed, epoch, file_idx])
            start -= int(rng.integers(0, self.stride))  # window 0 still starts at BOS
        start = int(max(0, min(start, span - self.seq_len - 1)))
        stop = min(start + self.seq_len + 1, span)
        body = np.asarray(self._memmap()[offset + max(start - 1, 0): offset + min(stop - 1, length)], np.int64)
        parts = ([[self.bos_id]] if start == 0 else []) + [body] + ([[self.eos_id]] if stop == span else [])
        out = np.concatenate(parts).astype(np.int64)
        return np.pad(out, (0, self.seq_len + 1 - out.size), constant_values=self.pad_id)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        ids = self.window(index, epoch)
        if self.augment is not None:
            ids = self.augment(ids, np.random.default_rng([self.seed, epoch, index, 1]))
        x = torch.from_numpy(ids[:-1].copy())
        y = torch.from_numpy(ids[1:].copy())
        y[y == self.pad_id] = IGNORE_INDEX
        return {"input_ids": x, "labels": y}


class EpochShuffleSampler(Sampler):
    """A permutation seeded by (seed, epoch) that yields (epoch, index) pairs.

    The epoch is read when iteration starts (from `epoch_fn`, e.g. the trainer's current epoch),
    not when the iterator is created, and travels with each index into the dataset, so worker
    processes and runs resumed from a checkpoint see exactly the windows of an uninterrupted run.
    """

    def __init__(self, dataset: TokenWindowDataset, seed: int = 0, shuffle: bool = True,
                 epoch_fn: Callable[[], int] | None = None):
        self.dataset, self.seed, self.shuffle, self.epoch_fn = dataset, seed, shuffle, epoch_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # used when no epoch_fn is given
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else range(n)
        for index in order:
            yield int(epoch), int(index)
