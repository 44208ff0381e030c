"""torchmetrics wrapper: per-sample music metrics of generated Scores, averaged.

    metric = MusicMetrics(names=["H4", "GS", "pitch_range"])
    metric.update([score_a, score_b])   # symusic Scores
    metric.compute()                    # {"H4": tensor(..), "GS": tensor(..), ...}

Each metric averages over the samples where it is defined (nan values are not counted);
a metric defined on no sample computes to nan. Scores without pitched notes count in
`empty` and contribute nothing else.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import symusic
import torch
from torchmetrics import Metric

from metrics.notes import Piece
from metrics.registry import compute_metrics, resolve_names


class MusicMetrics(Metric):
    full_state_update = False
    higher_is_better = None

    def __init__(self, names: str | Sequence[str] | None = "fast", **kwargs):
        super().__init__(**kwargs)
        self.names = resolve_names(names)
        size = len(self.names)
        self.add_state("sums", torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("empty", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: Sequence[symusic.Score]) -> None:
        for score in scores:
            piece = Piece(score)
            if len(piece.notes) == 0:
                self.empty += 1
                continue
            values, _ = compute_metrics(piece, self.names)  # failures are logged there
            for i, name in enumerate(self.names):
                if math.isfinite(values[name]):
                    self.sums[i] += values[name]
                    self.counts[i] += 1

    def compute(self) -> dict[str, torch.Tensor]:
        means = torch.where(self.counts > 0, self.sums / self.counts.clamp(min=1),
                            torch.full_like(self.sums, float("nan")))
        return {name: means[i] for i, name in enumerate(self.names)}
