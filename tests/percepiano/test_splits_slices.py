"""Splits (published performer protocol, greedy segment buckets) and measure-aligned slices."""
from collections import Counter

import numpy as np
import pytest

from datamodules.percepiano.catalog import PerfItem, load_labels, pianist_id
from datamodules.percepiano.slices import measure_slices, measure_starts, plan_epoch
from datamodules.percepiano.splits import greedy_buckets, performer_split, segment_split
from tests.percepiano.helpers import percepiano_root


def _items_from_keys(keys):
    out = []
    for k in keys:
        parts = k.split("_")
        out.append(PerfItem(None, k, "_".join(parts[:-2]), parts[-1], parts[-2], pianist_id(k)))
    return out


def test_performer_protocol_gives_published_sizes(shared_data):
    labels = load_labels(percepiano_root(shared_data))
    items = _items_from_keys(sorted(labels))
    assert len(items) == 1189
    sizes = [Counter(performer_split(items, k).values()) for k in range(4)]
    assert all(s["test"] == 193 for s in sizes)
    assert [s["val"] for s in sizes] == [175, 175, 162, 175]
    with pytest.raises(ValueError, match="folds 0..3"):
        performer_split(items, 4)


def test_segment_protocol_balances_groups_and_never_straddles(shared_data):
    items = _items_from_keys(sorted(load_labels(percepiano_root(shared_data))))
    split = segment_split(items, fold=1)
    by_group = {}
    for it in items:
        by_group.setdefault(it.group, set()).add(split[it.key])
    assert all(len(s) == 1 for s in by_group.values())
    counts = Counter(split.values())
    assert abs(counts["test"] - counts["val"]) <= 10  # greedy buckets are near-equal
    assert split == segment_split(list(reversed(items)), fold=1)  # order-independent


def test_greedy_buckets_largest_first():
    assert greedy_buckets({"a": 5, "b": 4, "c": 3, "d": 2}, 2) == {"a": 0, "b": 1, "c": 1, "d": 0}


def test_slices_are_measure_aligned_cover_and_overlap():
    measure = np.repeat(np.arange(20), 13)  # 260 notes, 13 per measure
    starts = set(measure_starts(measure).tolist()) | {len(measure)}
    fixed = measure_slices(measure, 60)
    for rng in (None, np.random.default_rng(0)):
        sl = measure_slices(measure, 60, rng)
        assert sl[0][0] == 0 and sl[-1][1] == len(measure)
        assert all(s in starts and e in starts for s, e in sl)
        assert all(e - s <= 60 for s, e in sl)
        assert all(s2 < e1 for (_, e1), (s2, _) in zip(sl, sl[1:]))  # overlapping, no gaps
    assert measure_slices(measure, 60) == fixed  # evaluation slicing is fixed
    plans = {tuple(plan_epoch([measure], 60, seed)) for seed in range(5)}
    assert len(plans) > 1  # training boundaries change with the epoch
    assert measure_slices(measure[:50], 60) == [(0, 50)]
