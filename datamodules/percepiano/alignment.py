"""Performance <-> score note alignment: DTW over score onsets x performed notes, then pitch matching.

1. Score notes are grouped into onset events (chords); performed notes stay single.
2. DTW (steps: diagonal, score-advance, performance-advance) with cost 0 when the performed
   pitch is in the event, 0.5 for the same pitch class, 1 otherwise, gives a monotone path.
3. Each performed note is matched to an unused score note of the same pitch in its path event,
   or in the nearest events within `search_events` of it (ornaments, rolled chords, slips).
The matched fraction (of score notes) measures alignment quality; below a threshold the file
is skipped with a reason by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BELOW_THRESHOLD = "alignment_below_threshold"


@dataclass
class Alignment:
    score_to_perf: np.ndarray  # (S,) index of the matched performed note, -1 when unmatched
    matched_fraction: float    # matched score notes / score notes
    perf_matched_fraction: float  # matched performed notes / performed notes


def onset_events(onsets: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """(S,) event index of each (sorted) score onset: notes within `tolerance` share an event."""
    return np.cumsum(np.diff(onsets, prepend=-np.inf) > tolerance) - 1


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Monotone path through an (E, P) cost matrix from (0, 0) to (E-1, P-1)."""
    E, P = cost.shape
    acc = np.full((E, P), np.inf)
    acc[0] = np.cumsum(cost[0])
    for i in range(1, E):
        # diagonal / vertical moves from row i-1, then horizontal moves inside row i in one pass:
        # acc[i, j] = min_k<=j (best[k] + sum(cost[i, k+1..j])) = C[j] + min_k<=j (best[k] - C[k])
        best = cost[i] + np.minimum(acc[i - 1], np.concatenate([[np.inf], acc[i - 1, :-1]]))
        csum = np.cumsum(cost[i])
        acc[i] = csum + np.minimum.accumulate(best - csum)
    i, j, path = E - 1, P - 1, [(E - 1, P - 1)]
    while i > 0 or j > 0:
        moves = []
        if i > 0 and j > 0:
            moves.append((acc[i - 1, j - 1], i - 1, j - 1))
        if i > 0:
            moves.append((acc[i - 1, j], i - 1, j))
        if j > 0:
            moves.append((acc[i, j - 1], i, j - 1))
        _, i, j = min(moves)
        path.append((i, j))
    return path[::-1]


def align(score_pitch: np.ndarray, score_onset: np.ndarray, perf_pitch: np.ndarray,
          search_events: int = 3) -> Alignment:
    """Match performed notes (sorted by onset) to score notes (sorted by onset)."""
    S, P = len(score_pitch), len(perf_pitch)
    if S == 0 or P == 0:
        return Alignment(np.full(S, -1), 0.0, 0.0)
    event = onset_events(score_onset)
    E = int(event[-1]) + 1
    pitch_in_event = np.zeros((E, 128), dtype=bool)
    pitch_in_event[event, score_pitch] = True
    class_in_event = np.zeros((E, 12), dtype=bool)
    class_in_event[event, score_pitch % 12] = True
    cost = np.where(pitch_in_event[:, perf_pitch], 0.0, np.where(class_in_event[:, perf_pitch % 12], 0.5, 1.0))
    event_of_perf = np.zeros(P, dtype=np.int64)
    for e, p in dtw_path(cost):  # the last event a performed note is paired with on the path
        event_of_perf[p] = e
    free: dict[tuple[int, int], list[int]] = {}  # (event, pitch) -> unused score note indices
    for s in range(S):
        free.setdefault((int(event[s]), int(score_pitch[s])), []).append(s)
    score_to_perf = np.full(S, -1, dtype=np.int64)
    n_perf_matched = 0
    for p in range(P):
        e0, pitch = int(event_of_perf[p]), int(perf_pitch[p])
        for d in [0] + [s * k for k in range(1, search_events + 1) for s in (-1, 1)]:
            bucket = free.get((e0 + d, pitch))
            if bucket:
                score_to_perf[bucket.pop(0)] = p
                n_perf_matched += 1
                break
    return Alignment(score_to_perf, float((score_to_perf >= 0).mean()), n_perf_matched / P)
