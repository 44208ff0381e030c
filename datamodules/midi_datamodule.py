"""The token DataModule shared by the generative families: source -> cache -> windows -> batches."""
from __future__ import annotations

import json
import logging
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Callable

import miditok
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from datamodules.base import SplitDataModule
from datamodules.sources.base import MidiSource
from datamodules.splits import split_by_piece
from datamodules.token_cache import CacheReport, TokenCache
from datamodules.tokenizer import tokenizer_to_json
from datamodules.windows import TokenWindowDataset

log = logging.getLogger(__name__)


class MidiDataModule(SplitDataModule):
    def __init__(self, source: MidiSource, tokenizer: miditok.MusicTokenizer, cache_dir: str,
                 seq_len: int = 256, batch_size: int = 16, num_workers: int = 0,
                 val_frac: float = 0.1, test_frac: float = 0.1, split_seed: int = 0,
                 train_stride: int | None = None, augment: Callable | None = None,
                 limit_files: int | None = None, summary_dir: str | None = None, seed: int = 0,
                 root: str | None = None):
        super().__init__()
        self.source, self.tokenizer, self.cache = source, tokenizer, TokenCache(cache_dir, tokenizer)
        self.seq_len, self.batch_size, self.num_workers = seq_len, batch_size, num_workers
        self.val_frac, self.test_frac, self.split_seed = val_frac, test_frac, split_seed
        self.train_stride = train_stride or seq_len // 2
        self.augment = augment(tokenizer) if isinstance(augment, partial) else augment
        self.limit_files, self.summary_dir, self.seed = limit_files, summary_dir, seed
        self.report: CacheReport | None = None
        self.datasets: dict[str, TokenWindowDataset] = {}

    # what a model built for this data needs to know (train.py passes it to the model config)
    def model_kwargs(self) -> dict:
        tok = self.tokenizer
        return {"vocab_size": len(tok), "pad_id": tok.pad_token_id, "bos_id": tok["BOS_None"],
                "eos_id": tok["EOS_None"], "tokenizer_json": tokenizer_to_json(tok)}

    def prepare_data(self) -> None:
        self._build_cache()

    def _build_cache(self) -> CacheReport:
        if self.report is None:
            items = self.source.items()
            if self.limit_files:
                items = items[: self.limit_files]
            if not items:
                raise RuntimeError(f"data source {type(self.source).__name__} found no MIDI files; "
                                   "check data.source / data.root")
            self.report = self.cache.build(items)
            self._print_summary()
        return self.report

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        report = self._build_cache()  # a warm cache: only hashes files
        if not report.files:
            raise RuntimeError(f"no usable MIDI among {len(report.skipped)} files "
                               f"(skips: {report.summary()['skipped_by_reason']})")
        splits = split_by_piece([f.item.piece_id for f in report.files], self.val_frac,
                                self.test_frac, self.split_seed)
        tok = self.tokenizer
        for name in ("train", "val", "test"):
            files = [(f.offset, f.length) for f in report.files if splits[f.item.piece_id] == name]
            train = name == "train"
            self.datasets[name] = TokenWindowDataset(
                self.cache.tokens_path, files, self.seq_len, tok["BOS_None"], tok["EOS_None"],
                tok.pad_token_id, stride=self.train_stride if train else self.seq_len,
                jitter=train, augment=self.augment if train else None, seed=self.seed)
        self.split_sizes = dict(Counter(splits.values()))

    def _print_summary(self) -> None:
        summary = self.report.summary()
        table = Table(title=f"data: {type(self.source).__name__}")
        for col in ("read", "skipped", "tokenized now", "cache hits", "tokens"):
            table.add_column(col, justify="right")
        table.add_row(*(str(summary[k]) for k in ("read", "skipped", "tokenized_now", "cache_hits", "tokens")))
        Console(stderr=True).print(table)
        for reason, n in summary["skipped_by_reason"].items():
            log.warning("skipped %d file(s): %s", n, reason)
        if self.summary_dir:
            path = Path(self.summary_dir) / "data_summary.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=1))

    def _loader(self, name: str) -> DataLoader:
        return self._epoch_loader(self.datasets[name], name, self.batch_size, self.num_workers, self.seed)
