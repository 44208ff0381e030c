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
    With `jitter=True` every epoch shifts each file's window starts by a new random offset
    (deterministic in (seed, epoch, file)), so training sees fresh slice boundaries each epoch.
    """

    def __init__(self, tokens_path: Path | str, files: list[tuple[int, int]], seq_len: int,
                 bos_id: int, eos_id: int, pad_id: int, stride: int | None = None,
                 jitter: bool = False, augment: Callable | None = None, seed: int = 0):
        self.tokens_path, self.files, self.seq_len = Path(tokens_path), files, seq_len
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.stride = stride or seq_len
        self.jitter, self.augment, self.seed, self.epoch = jitter, augment, seed, 0
        counts = [max(1, math.ceil((length + 2 - seq_len - 1) / self.stride) + 1) for _, length in files]
        self.cum = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._ids = None  # opened lazily, once per worker process

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.cum[-1])

    def _memmap(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.memmap(self.tokens_path, dtype=np.int32, mode="r")
        return self._ids

    def window(self, index: int) -> np.ndarray:
        """The raw seq_len+1 ids of window `index` (padded with PAD at a file's end)."""
        file_idx = int(np.searchsorted(self.cum, index, side="right") - 1)
        offset, length = self.files[file_idx]
        span = length + 2  # with BOS and EOS
        start = (index - self.cum[file_idx]) * self.stride
        if self.jitter:
            rng = np.random.default_rng([self.seed, self.epoch, file_idx])
            start += int(rng.integers(0, self.stride))
        start = int(max(0, min(start, span - self.seq_len - 1)))
        stop = min(start + self.seq_len + 1, span)
        body = np.asarray(self._memmap()[offset + max(start - 1, 0): offset + min(stop - 1, length)], np.int64)
        parts = ([[self.bos_id]] if start == 0 else []) + [body] + ([[self.eos_id]] if stop == span else [])
        out = np.concatenate(parts).astype(np.int64)
        return np.pad(out, (0, self.seq_len + 1 - out.size), constant_values=self.pad_id)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.window(index)
        if self.augment is not None:
            ids = self.augment(ids, np.random.default_rng([self.seed, self.epoch, index, 1]))
        x = torch.from_numpy(ids[:-1].copy())
        y = torch.from_numpy(ids[1:].copy())
        y[y == self.pad_id] = IGNORE_INDEX
        return {"input_ids": x, "labels": y}


class EpochShuffleSampler(Sampler[int]):
    """A permutation seeded by (seed, epoch); also tells the dataset which epoch it is.

    Lightning calls set_epoch at every epoch start, so a run resumed from a checkpoint sees
    the same order as an uninterrupted one.
    """

    def __init__(self, dataset: TokenWindowDataset, seed: int = 0, shuffle: bool = True):
        self.dataset, self.seed, self.shuffle, self.epoch = dataset, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        n = len(self.dataset)
        if not self.shuffle:
            return iter(range(n))
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(n).tolist())
