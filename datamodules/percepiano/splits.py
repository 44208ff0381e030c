"""PercePiano splits. Deterministic; every function returns {item key: "train"|"val"|"test"}.

- performer protocol (published): test = pianists {1, 2}; fold k validates on pianists
  {2k+3, 2k+4}; everyone else (deadpan Score/Score2 renders included) trains.
- segment protocol: segment groups (one score segment, all its performances) are dealt greedily,
  largest first, into the currently smallest of `n_folds + 1` buckets; bucket 0 is test and
  bucket k+1 validates fold k. A segment never straddles two splits.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from rich.console import Console
from rich.table import Table

from datamodules.percepiano.catalog import PerfItem

TEST_PIANISTS = (1, 2)
N_FOLDS = 4


def performer_split(items: list[PerfItem], fold: int) -> dict[str, str]:
    if not 0 <= fold < N_FOLDS:
        raise ValueError(f"data.fold={fold}: the performer protocol has folds 0..{N_FOLDS - 1}")
    val = {2 * fold + 3, 2 * fold + 4}
    return {it.key: "test" if it.pianist in TEST_PIANISTS else "val" if it.pianist in val else "train"
            for it in items}


def greedy_buckets(sizes: dict[str, int], n_buckets: int) -> dict[str, int]:
    """Largest group first into the lightest bucket (ties: lower bucket, then group name)."""
    load = [0] * n_buckets
    out = {}
    for group, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        b = min(range(n_buckets), key=lambda i: (load[i], i))
        out[group] = b
        load[b] += size
    return out


def segment_split(items: list[PerfItem], fold: int, n_folds: int = N_FOLDS) -> dict[str, str]:
    if not 0 <= fold < n_folds:
        raise ValueError(f"data.fold={fold}: the segment protocol has folds 0..{n_folds - 1}")
    bucket = greedy_buckets(dict(Counter(it.group for it in items)), n_folds + 1)
    return {it.key: "test" if bucket[it.group] == 0 else "val" if bucket[it.group] == fold + 1 else "train"
            for it in items}


def make_split(items: list[PerfItem], protocol: str, fold: int) -> dict[str, str]:
    if protocol == "performer":
        return performer_split(items, fold)
    if protocol == "segment":
        return segment_split(items, fold)
    raise ValueError(f"data.protocol={protocol!r}: choose 'performer' or 'segment'")


def imbalance_table(items: list[PerfItem], split: dict[str, str]) -> dict[str, dict[str, int]]:
    """{piece: {split: n items}} printed as a table: how unevenly pieces fill the splits."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for it in items:
        counts[it.piece][split[it.key]] += 1
    table = Table(title="PercePiano items per piece and split")
    for col in ("piece", "train", "val", "test", "total"):
        table.add_column(col, justify="right" if col != "piece" else "left")
    for piece in sorted(counts):
        c = counts[piece]
        table.add_row(piece, *(str(c[s]) for s in ("train", "val", "test")), str(sum(c.values())))
    total = Counter(split[it.key] for it in items)
    table.add_row("all", *(str(total[s]) for s in ("train", "val", "test")), str(len(items)))
    Console(stderr=True).print(table)
    return {p: dict(c) for p, c in counts.items()}
