"""Role-conditioned token windows over `data/roles/<role>/<sample_id>/` (see datamodules/roles.py).

A window covers bars [b, e) of one sample, as many as fit in seq_len + 1 ids:
    BOS ROLE TEMPO <conditioning bars b..e-1> COND_SEP <target bars b..e-1> (Bar | EOS)
The closing Bar (EOS at the piece's end) teaches the model where the requested bars end.
Labels are -100 up to COND_SEP (loss on the target only) unless loss_on="all".
Splits are by piece (`meta.piece_id`): a tune and all its transpositions share one split.
Validation/test read the untransposed versions only, in non-overlapping windows.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import miditok
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import SplitDataModule
from datamodules.role_tokens import ControlIds, control_ids
from datamodules.roles import CONDITIONING, META, TARGET
from datamodules.sources.base import MidiItem
from datamodules.splits import split_by_piece
from datamodules.token_cache import TokenCache
from datamodules.tokenizer import tokenizer_to_json
from datamodules.windows import IGNORE_INDEX

log = logging.getLogger(__name__)
CONTROL_LEN = 5  # BOS ROLE TEMPO ... COND_SEP ... closing Bar/EOS


@dataclass
class RoleSample:
    folder: Path
    meta: dict
    cond: tuple[int, np.ndarray]  # (offset in the token memmap, bar start indices + end)
    target: tuple[int, np.ndarray]

    @property
    def n_bars(self) -> int:
        return max(len(self.cond[1]), len(self.target[1])) - 1


def bar_bounds(ids: np.ndarray, bar_id: int) -> np.ndarray:
    """Start index of every bar and the end: bar k spans [bounds[k], bounds[k+1])."""
    starts = np.flatnonzero(ids == bar_id)
    starts = starts if starts.size else np.zeros(1, dtype=np.int64)
    starts[0] = 0  # ids before the first Bar (none in REMI) join bar 0
    return np.concatenate([starts, [ids.size]]).astype(np.int64)


def bar_lengths(bounds: np.ndarray, n_bars: int) -> np.ndarray:
    """Ids per bar, bars past the file's end count 1 (an empty bar is one Bar token)."""
    lengths = np.ones(n_bars, dtype=np.int64)
    lengths[: len(bounds) - 1] = np.diff(bounds)
    return lengths


def windows_of(sample: RoleSample, seq_len: int, bar_stride: int | None) -> list[tuple[int, int]]:
    """(first bar, end bar) of each window; stride None = back-to-back windows."""
    per_bar = bar_lengths(sample.cond[1], sample.n_bars) + bar_lengths(sample.target[1], sample.n_bars)
    cum = np.concatenate([[0], np.cumsum(per_bar)])
    budget = seq_len + 1 - CONTROL_LEN
    out, start = [], 0
    while start < sample.n_bars:
        end = int(np.searchsorted(cum, cum[start] + budget, side="right") - 1)
        end = max(end, start + 1)  # one bar always (truncated if it alone is too long)
        out.append((start, min(end, sample.n_bars)))
        start = start + bar_stride if bar_stride else end
    return out


class RoleWindowDataset(Dataset):
    def __init__(self, tokens_path: Path, samples: list[RoleSample], windows: list[tuple[int, int, int]],
                 ids: ControlIds, seq_len: int, loss_on: str = "target", role: str = "lead"):
        self.tokens_path, self.samples, self.windows = tokens_path, samples, windows
        self.ids, self.seq_len, self.loss_on, self.role = ids, seq_len, loss_on, role
        self._memmap = None

    def __len__(self) -> int:
        return len(self.windows)

    def _bars(self, part: tuple[int, np.ndarray], first: int, end: int) -> np.ndarray:
        if self._memmap is None:
            self._memmap = np.memmap(self.tokens_path, dtype=np.int32, mode="r")
        offset, bounds = part
        have = len(bounds) - 1
        stop = min(end, have)
        body = np.asarray(self._memmap[offset + bounds[min(first, have)]: offset + bounds[stop]], np.int64) \
            if first < have else np.zeros(0, np.int64)
        return np.concatenate([body, np.full(max(0, end - max(first, have)), self.ids.bar, np.int64)])

    def parts(self, index: int) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(prefix ids up to COND_SEP, target ids with the closing token, the window's target bars)."""
        sample_idx, first, end = self.windows[index]
        sample = self.samples[sample_idx]
        prefix = [self.ids.bos, self.ids.role(sample.meta.get("role", self.role)),
                  self.ids.tempo(sample.meta.get("tempo", 120.0))]
        cond = self._bars(sample.cond, first, end)
        target = self._bars(sample.target, first, end)
        closing = self.ids.eos if end >= sample.n_bars else self.ids.bar
        return prefix + cond.tolist() + [self.ids.sep], np.concatenate([target, [closing]]), target

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index = key[1] if isinstance(key, tuple) else key  # (epoch, index) from EpochShuffleSampler
        prefix, target, _ = self.parts(index)
        budget = self.seq_len + 1
        if len(prefix) > budget // 2 and len(prefix) + len(target) > budget:  # one huge bar
            prefix = prefix[: budget // 2 - 1] + [self.ids.sep]
        seq = np.concatenate([np.asarray(prefix, np.int64), target])[:budget]
        labels = seq.copy()
        if self.loss_on == "target":
            labels[: len(prefix)] = IGNORE_INDEX  # predicting the prefix is not the task
        seq = np.pad(seq, (0, budget - seq.size), constant_values=self.ids.pad)
        labels = np.pad(labels, (0, budget - labels.size), constant_values=IGNORE_INDEX)
        return {"input_ids": torch.from_numpy(seq[:-1].copy()), "labels": torch.from_numpy(labels[1:].copy())}


class RoleDataModule(SplitDataModule):
    def __init__(self, roles_root: str, role: str, tokenizer: miditok.MusicTokenizer, cache_dir: str,
                 seq_len: int = 512, batch_size: int = 8, num_workers: int = 0, val_frac: float = 0.1,
                 test_frac: float = 0.1, split_seed: int = 0, loss_on: str = "target", bar_stride: int = 4,
                 eval_transposed: bool = False, sources: list[str] | None = None,
                 limit_pieces: int | None = None, seed: int = 0, summary_dir: str | None = None,
                 prepare: dict | None = None):
        super().__init__()
        if loss_on not in ("target", "all"):
            raise ValueError(f"loss_on must be 'target' or 'all', got {loss_on!r}")
        self.role_dir = Path(roles_root) / role
        self.role, self.tokenizer, self.ids = role, tokenizer, control_ids(tokenizer)
        self.cache_dir, self.cache = cache_dir, TokenCache(cache_dir, tokenizer)
        self.seq_len, self.batch_size, self.num_workers = seq_len, batch_size, num_workers
        self.val_frac, self.test_frac, self.split_seed = val_frac, test_frac, split_seed
        self.loss_on, self.bar_stride, self.eval_transposed = loss_on, bar_stride, eval_transposed
        self.sources, self.limit_pieces, self.seed = sources, limit_pieces, seed
        self.summary_dir, self.prepare = summary_dir, dict(prepare or {})
        self.datasets: dict[str, RoleWindowDataset] = {}
        self.splits: dict[str, str] = {}

    def model_kwargs(self) -> dict:
        tok = self.tokenizer
        return {"vocab_size": len(tok), "pad_id": tok.pad_token_id, "bos_id": self.ids.bos,
                "eos_id": self.ids.eos, "tokenizer_json": tokenizer_to_json(tok)}

    def _metas(self) -> list[tuple[Path, dict]]:
        if not self.role_dir.is_dir():
            raise FileNotFoundError(f"no role data set at {self.role_dir}: prepare it with "
                                    f"`python -m datamodules.roles source=wjazzd role={self.role} "
                                    f"out_dir={self.role_dir.parent}` or set data.roles_root")
        metas = []
        for folder in sorted(p for p in self.role_dir.iterdir() if p.is_dir() and not p.name.endswith(".tmp")):
            try:
                meta = json.loads((folder / META).read_text())
            except (OSError, json.JSONDecodeError) as err:
                log.warning("skipped role sample %s: meta.json unreadable (%s)", folder, err)
                continue
            if self.sources is None or meta.get("source") in self.sources:
                metas.append((folder, meta))
        if self.limit_pieces:
            keep = sorted({m["piece_id"] for _, m in metas})[: self.limit_pieces]
            metas = [(f, m) for f, m in metas if m["piece_id"] in set(keep)]
        if not metas:
            raise RuntimeError(f"no samples under {self.role_dir} (sources={self.sources})")
        return metas

    def prepare_data(self) -> None:
        has_samples = self.role_dir.is_dir() and any(p.is_dir() for p in self.role_dir.iterdir())
        if not has_samples and self.prepare.get("source"):
            from datamodules.roles import check_role_dataset, prepare_role_dataset

            log.info("no role data at %s: preparing it from %s", self.role_dir, self.prepare["source"])
            options = {k: v for k, v in self.prepare.items() if k != "source"}
            prepare_role_dataset(self.prepare["source"], self.role, self.role_dir.parent,
                                 self.cache_dir, **options)
            check = check_role_dataset(self.role_dir.parent, self.role, remove_bad=True)
            log.info("role data ready: %d samples (%d removed by the integrity check)", check.samples,
                     len(check.problems))
        self._tokenize(self._metas())

    def _tokenize(self, metas: list[tuple[Path, dict]]):
        items = [MidiItem(folder / name, meta["piece_id"], "roles")
                 for folder, meta in metas for name in (CONDITIONING, TARGET)]
        return self.cache.build(items)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        metas = self._metas()
        report = self._tokenize(metas)
        located = {str(f.item.path): (f.offset, f.length) for f in report.files}
        ids_all = self.cache.ids()
        samples, dropped = [], Counter()
        for folder, meta in metas:
            parts = [located.get(str(folder / name)) for name in (CONDITIONING, TARGET)]
            if None in parts:
                dropped["untokenizable"] += 1
                continue
            bounds = [bar_bounds(np.asarray(ids_all[o:o + n]), self.ids.bar) for o, n in parts]
            samples.append(RoleSample(folder, meta, (parts[0][0], bounds[0]), (parts[1][0], bounds[1])))
        for path, reason, detail in report.skipped:
            log.warning("role file %s not tokenized: %s %s", path, reason, detail)
        self.splits = split_by_piece([s.meta["piece_id"] for s in samples], self.val_frac, self.test_frac,
                                     self.split_seed)
        for name in ("train", "val", "test"):
            train = name == "train"
            windows = [(i, a, b) for i, s in enumerate(samples) if self.splits[s.meta["piece_id"]] == name
                       and (train or self.eval_transposed or s.meta.get("transposition", 0) == 0)
                       for a, b in windows_of(s, self.seq_len, self.bar_stride if train else None)]
            self.datasets[name] = RoleWindowDataset(self.cache.tokens_path, samples, windows, self.ids,
                                                    self.seq_len, self.loss_on, self.role)
        self.summary = {"samples": len(samples), "dropped": dict(dropped),
                        "pieces": dict(Counter(self.splits.values())),
                        "windows": {k: len(v) for k, v in self.datasets.items()}}
        log.info("role data %s: %s", self.role_dir, self.summary)
        if self.summary_dir:
            Path(self.summary_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.summary_dir) / "data_summary.json").write_text(json.dumps(self.summary, indent=1))

    def heldout(self, n: int, split: str = "test") -> list[dict]:
        """The first window of up to n held-out pieces: prompt ids, real target ids, meta."""
        dataset = self.datasets[split]
        firsts: dict[int, int] = {}
        for index, (sample_idx, first, _) in enumerate(dataset.windows):
            if first == 0 and sample_idx not in firsts:
                firsts[sample_idx] = index
        out = []
        for sample_idx, index in list(firsts.items())[:n]:
            prefix, _, target = dataset.parts(index)
            _, first, end = dataset.windows[index]
            out.append({"prompt": prefix, "target": target.tolist(), "n_bars": end - first,
                        "meta": dataset.samples[sample_idx].meta,
                        "conditioning": prefix[3:-1], "folder": str(dataset.samples[sample_idx].folder)})
        return out

    def _loader(self, name: str) -> DataLoader:
        return self._epoch_loader(self.datasets[name], name, self.batch_size, self.num_workers, self.seed)
