"""PercePiano DataModule: performance + score files -> aligned note tables (cached on disk) ->
measure-aligned slices (redrawn every epoch) -> padded batches with lengths for PackedSequence."""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.base import SplitDataModule
from datamodules.midi_io import MidiSkip
from datamodules.percepiano.alignment import BELOW_THRESHOLD
from datamodules.percepiano.catalog import (
    LABEL_NAMES,
    PerfItem,
    list_items,
    load_labels,
    score_paths,
)
from datamodules.percepiano.note_table import FEATURE_NAMES, extract_segment, file_digest
from datamodules.percepiano.score_features import XML_CACHE_VERSION, XmlCache
from datamodules.percepiano.slices import plan_epoch
from datamodules.percepiano.splits import imbalance_table, make_split

log = logging.getLogger(__name__)
FEATURE_VERSION = 1
NO_SCORE = "no_usable_score_midi"


class SliceDataset(Dataset):
    """Slices of normalised note tables; `regenerate(epoch)` redraws the training slices."""

    def __init__(self, entries: list[dict], mean: np.ndarray, std: np.ndarray, slice_len: int,
                 random_slices: bool, seed: int):
        self.entries, self.slice_len, self.random_slices, self.seed = entries, slice_len, random_slices, seed
        self.features = [torch.from_numpy((e["features"] - mean) / std).float() for e in entries]
        self.epoch = 0
        self.regenerate(0)

    def regenerate(self, epoch: int) -> None:
        self.epoch = epoch
        seed = self.seed * 100_003 + epoch if self.random_slices else None
        self.plan = plan_epoch([e["measure"] for e in self.entries], self.slice_len, seed)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, idx: int) -> dict:
        item, start, end = self.plan[idx]
        e = self.entries[item]
        dense = lambda a: torch.from_numpy(np.unique(a[start:end], return_inverse=True)[1].reshape(-1))
        return {"x": self.features[item][start:end], "beat": dense(e["beat"]), "measure": dense(e["measure"]),
                "voice": dense(e["voice"]), "labels": torch.tensor(e["labels"], dtype=torch.float32),
                "item": item}


def collate_slices(batch: list[dict]) -> dict:
    """Pad to the longest slice; `lengths` lets the model pack (indices are padded with -1)."""
    lengths = torch.tensor([len(b["x"]) for b in batch])
    T, F = int(lengths.max()), batch[0]["x"].shape[1]
    x = torch.zeros(len(batch), T, F)
    idx = {k: torch.full((len(batch), T), -1, dtype=torch.long) for k in ("beat", "measure", "voice")}
    for i, b in enumerate(batch):
        x[i, : lengths[i]] = b["x"]
        for k in idx:
            idx[k][i, : lengths[i]] = b[k]
    return {"x": x, "lengths": lengths, **idx, "labels": torch.stack([b["labels"] for b in batch]),
            "item": torch.tensor([b["item"] for b in batch])}


class EpochPermutation(Sampler):
    """A fresh, seeded permutation each epoch (the dataset's epoch), reproducible on resume."""

    def __init__(self, dataset: SliceDataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 7919 + self.dataset.epoch)
        return iter(torch.randperm(len(self.dataset), generator=g).tolist())


class PercePianoDataModule(SplitDataModule):
    def __init__(self, root: str, cache_dir: str, protocol: str = "performer", fold: int = 0,
                 batch_size: int = 8, num_workers: int = 0, slice_len: int = 400,
                 min_matched_fraction: float = 0.5, tempo_window: float = 2.0, search_events: int = 3,
                 max_voices: int = 4, limit_files: int | None = None, seed: int = 0,
                 summary_dir: str | None = None):
        super().__init__()
        self.root, self.cache_dir = Path(root), Path(cache_dir)
        self.protocol, self.fold = protocol, fold
        self.batch_size, self.num_workers, self.slice_len = batch_size, num_workers, slice_len
        self.min_matched_fraction = min_matched_fraction
        self.feature_cfg = {"tempo_window": tempo_window, "search_events": search_events,
                            "max_voices": max_voices, "version": FEATURE_VERSION, "xml": XML_CACHE_VERSION}
        self.limit_files, self.seed, self.summary_dir = limit_files, seed, summary_dir
        self.entries: dict[str, dict] | None = None
        self.skipped: dict[str, str] = {}
        self.datasets: dict[str, SliceDataset] = {}

    # ---- features -------------------------------------------------------------------------
    @property
    def feature_hash(self) -> str:
        return hashlib.sha1(json.dumps(self.feature_cfg, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def cache_path(self) -> Path:
        return self.cache_dir / f"percepiano_features_{self.feature_hash}.pkl"

    def prepare_data(self) -> None:
        self.build_features()

    def build_features(self) -> dict[str, dict]:
        """Every performance's note table, recomputed only for files whose bytes changed."""
        if self.entries is not None:
            return self.entries
        items = list_items(self.root)[: self.limit_files]
        cache = pickle.loads(self.cache_path.read_bytes()) if self.cache_path.exists() else {}
        xml_cache = XmlCache(self.cache_dir)
        entries, skipped, computed, t0 = {}, {}, 0, time.perf_counter()
        columns = (TextColumn("[bold]PercePiano features"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[name]}"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task("features", total=len(items), name="")
            for it in items:
                progress.update(task, advance=1, name=it.key[:40])
                midis, xml = score_paths(self.root, it)
                digest = file_digest([it.path, *midis, xml])
                hit = cache.get(it.key)
                if hit is not None and hit["digest"] == digest:
                    (entries if "skip" not in hit else skipped)[it.key] = hit if "skip" not in hit else hit["skip"]
                    continue
                computed += 1
                entry = self._extract(it, midis, xml, xml_cache)
                entry["digest"] = digest
                if "skip" in entry:
                    skipped[it.key] = entry["skip"]
                else:
                    entries[it.key] = entry
                cache[it.key] = entry
        if computed:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(cache))
            tmp.replace(self.cache_path)
        self.extract_seconds = time.perf_counter() - t0
        self.entries, self.skipped = entries, skipped
        self._report(items, computed, xml_cache)
        return entries

    def _extract(self, it: PerfItem, midis: list[Path], xml: Path | None, xml_cache: XmlCache) -> dict:
        cfg = {k: v for k, v in self.feature_cfg.items() if k not in ("version", "xml")}
        table, errors = None, []
        for midi in midis:  # Score first; Score2 when the Score MIDI is empty (real data is messy)
            try:
                table = extract_segment(it.path, midi, xml, xml_cache, **cfg)
                break
            except MidiSkip as err:
                errors.append(err)
                if err.path == it.path:  # the performance itself is unusable
                    return {"skip": f"performance_{err.reason}"}
        if table is None:
            return {"skip": NO_SCORE + (f" ({errors[-1].reason})" if errors else "")}
        al = table.alignment
        if al.matched_fraction < self.min_matched_fraction:
            return {"skip": f"{BELOW_THRESHOLD} ({al.matched_fraction:.2f} < {self.min_matched_fraction})",
                    "matched_fraction": al.matched_fraction}
        return {"features": table.features, "beat": table.beat, "measure": table.measure, "voice": table.voice,
                "matched_fraction": al.matched_fraction, "perf_matched_fraction": al.perf_matched_fraction}

    def _report(self, items: list[PerfItem], computed: int, xml_cache: XmlCache) -> None:
        fr = np.array([e["matched_fraction"] for e in self.entries.values()]) if self.entries else np.zeros(1)
        pf = np.array([e["perf_matched_fraction"] for e in self.entries.values()]) if self.entries else np.zeros(1)
        reasons = Counter(self.skipped.values())
        for reason, n in reasons.items():
            log.warning("skipped %d performance(s): %s", n, reason)
        self.summary = {"files": len(items), "usable": len(self.entries), "computed_now": computed,
                        "cache_hits": len(items) - computed, "xml_parsed_now": xml_cache.misses,
                        "seconds": round(self.extract_seconds, 2), "skipped": dict(self.skipped),
                        "score_matched_fraction": {"mean": float(fr.mean()), "min": float(fr.min()),
                                                   "p05": float(np.percentile(fr, 5)), "median": float(np.median(fr))},
                        "perf_matched_fraction": {"mean": float(pf.mean()), "min": float(pf.min())},
                        "per_file_matched_fraction": {k: round(e["matched_fraction"], 4)
                                                      for k, e in self.entries.items()}}
        Console(stderr=True).print(
            f"PercePiano features: {len(self.entries)}/{len(items)} usable, {computed} computed now in "
            f"{self.extract_seconds:.1f} s, score notes matched {fr.mean():.3f} mean / {fr.min():.3f} min, "
            f"skipped {dict(reasons)}")
        if self.summary_dir:
            path = Path(self.summary_dir) / "percepiano_data_summary.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.summary, indent=1))

    # ---- splits and loaders ----------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        entries = self.build_features()
        labels = load_labels(self.root)
        items = [it for it in list_items(self.root)[: self.limit_files] if it.key in entries and it.key in labels]
        self.unlabelled = sorted(k for k in entries if k not in labels)
        split = make_split(items, self.protocol, self.fold)
        self.split, self.items = split, items
        self.imbalance = imbalance_table(items, split)
        train_feats = np.concatenate([entries[it.key]["features"] for it in items if split[it.key] == "train"])
        self.mean = train_feats.mean(0)
        self.std = np.where(train_feats.std(0) > 1e-6, train_feats.std(0), 1.0)
        for name in ("train", "val", "test"):
            chosen = [it for it in items if split[it.key] == name]
            data = [{**entries[it.key], "labels": labels[it.key], "key": it.key} for it in chosen]
            self.datasets[name] = SliceDataset(data, self.mean, self.std, self.slice_len,
                                               random_slices=name == "train", seed=self.seed)
        self.split_sizes = {n: len(d.entries) for n, d in self.datasets.items()}
        log.info("PercePiano %s fold %d: %s items", self.protocol, self.fold, self.split_sizes)

    def regenerate_slices(self, epoch: int) -> None:
        """New random measure-aligned slice boundaries for the training set."""
        if "train" in self.datasets:
            self.datasets["train"].regenerate(epoch)

    def model_kwargs(self) -> dict:
        self.setup()
        return {"input_size": len(FEATURE_NAMES), "feature_mean": self.mean.tolist(),
                "feature_std": self.std.tolist(),
                "feature_cfg": {k: v for k, v in self.feature_cfg.items() if k not in ("version", "xml")}}

    def _loader(self, name: str) -> DataLoader:
        ds = self.datasets[name]
        sampler = EpochPermutation(ds, self.seed) if name == "train" else None
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_slices)

    def label_names(self) -> tuple[str, ...]:
        return LABEL_NAMES
