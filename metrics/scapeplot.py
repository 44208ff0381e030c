"""Fitness scape plot (Mueller's audio thumbnailing) for the structureness indicator SI.

The SSM follows the MusDr recipe (chroma at 10 Hz, 2.1 s boxcar smoothing, 2 Hz feature
rate, 16-frame path smoothing forward and backward over 7 relative tempi, transposition
invariance over 12 shifts, keep the top 25 %, scale to [0, 1], penalty -2, unit diagonal),
but the chroma comes from the notes (overlap seconds per pitch class), not from audio.

`fitness_scape_plot_loops` is the straightforward per-segment algorithm (dynamic programming,
then backtracking the optimal path family). `fitness_scape_plot` computes the same floats,
batching all segments of several lengths into one array per DP row (segments on the
contiguous axis) and backtracking them in lock-step; the DP keeps three score rows and
stores only the two comparison bits per cell that the backtracking reads.
"""
from __future__ import annotations

import numpy as np

FEATURE_RATE = 2.0  # Hz, the SSM / scape plot frame rate of the reference
CHROMA_RATE = 10.0
SMOOTH_LENGTH, DOWNSAMPLE = 21, 5
PATH_SMOOTH_LENGTH = 16
TEMPO_RELATIVE = np.exp(np.linspace(np.log(0.5), np.log(2.0), 7))
KEEP_FRACTION, PENALTY = 0.25, -2.0
_EPS = 1e-16
_NEG = -np.inf


def note_chroma(onset_s: np.ndarray, offset_s: np.ndarray, pitch: np.ndarray,
                rate: float = CHROMA_RATE) -> np.ndarray:
    """(12, T) chroma: seconds each pitch class sounds within each 1/rate-second frame."""
    n_frames = int(np.ceil(float(offset_s.max(initial=0.0)) * rate)) + 1
    chroma = np.zeros((12, n_frames))
    for start, stop, p in zip(onset_s * rate, offset_s * rate, pitch % 12):
        first, last = int(start), min(int(np.ceil(stop)), n_frames)
        for frame in range(first, last):
            chroma[p, frame] += min(stop, frame + 1) - max(start, frame)
    return chroma / rate


def _normalise_columns(features: np.ndarray, threshold: float) -> np.ndarray:
    norms = np.linalg.norm(features, axis=0)
    out = np.full_like(features, 1.0 / np.sqrt(features.shape[0]))
    loud = norms > threshold
    out[:, loud] = features[:, loud] / norms[loud]
    return out


def chroma_features(chroma_10hz: np.ndarray) -> np.ndarray:
    """10 Hz chroma -> L2-normalised, smoothed, 2 Hz features (silent frames -> uniform)."""
    norms = np.linalg.norm(chroma_10hz, axis=0)
    framed = np.where(norms > 0, chroma_10hz / np.where(norms > 0, norms, 1.0), 0.0)
    kernel = np.ones(SMOOTH_LENGTH) / SMOOTH_LENGTH
    smooth = np.stack([np.convolve(row, kernel, mode="same") for row in framed])
    return _normalise_columns(smooth[:, ::DOWNSAMPLE], threshold=0.001)


def _smooth_diagonals(S: np.ndarray, length: int) -> np.ndarray:
    """Max over relative tempi of the forward and backward diagonal mean filters."""
    N = S.shape[0]
    result = np.zeros((N, N))
    for tempo in TEMPO_RELATIVE:
        m_ceil = int(np.ceil(N / tempo))
        index = np.maximum(np.round(np.arange(1, m_ceil + 1) / m_ceil * N) - 1, 0).astype(int)
        resampled = S[:, index]
        padded = np.zeros((N + 2 * length, m_ceil + 2 * length))
        padded[length:length + N, length:length + m_ceil] = resampled
        forward = np.zeros((N, m_ceil))
        backward = np.zeros((N, m_ceil))
        for k in range(length):
            forward += padded[length + k:length + k + N, length + k:length + k + m_ceil]
            backward += padded[length - k:length - k + N, length - k:length - k + m_ceil]
        back_index = np.maximum(np.round(np.arange(1, N + 1) / N * m_ceil) - 1, 0).astype(int)
        smoothed = np.maximum(forward, backward)[:, back_index] / length
        result = np.maximum(result, smoothed)
    return result


def self_similarity(features: np.ndarray) -> np.ndarray:
    """Enhanced, transposition-invariant, thresholded SSM with a unit diagonal."""
    S = None
    for shift in range(12):
        shifted = np.roll(features, shift, axis=0)
        candidate = _smooth_diagonals(shifted.T @ features, PATH_SMOOTH_LENGTH)
        S = candidate if S is None else np.maximum(S, candidate)
    S = np.maximum(S, 0.0)  # dot products of non-negative features; guards -0.0 round-off
    n_below = int(np.round(S.size * (1 - KEEP_FRACTION)))
    if n_below < S.size:
        threshold = np.sort(S, axis=None)[n_below]
        S = np.where(S < threshold, 0.0, S)
    else:
        S = np.zeros_like(S)
    zero = S == 0
    if (~zero).any():
        low, high = S[~zero].min(), S.max()
        if high > low:
            S = (S - low) / (high - low)
            S[zero] = PENALTY
    np.fill_diagonal(S, 1.0)
    return S


# ---------------------------------------------------------------- scape plot, loops
def _segment_fitness_loops(S: np.ndarray, start: int, length: int) -> float:
    N = S.shape[0]
    seg = S[:, start:start + length]
    M = length + 1  # column 0 is the "elevator" between repetitions
    D = np.full((N, M), _NEG)
    D[0, 0], D[0, 1] = 0.0, seg[0, 0]
    for n in range(1, N):
        D[n, 0] = max(D[n - 1, 0], D[n - 1, M - 1])
        D[n, 1] = D[n, 0] + seg[n, 0]
        for m in range(2, M):
            best = max(D[n - 1, m - 1], D[n - 1, m - 2], D[n - 2, m - 1] if n >= 2 else _NEG)
            D[n, m] = seg[n, m - 1] + best
    score = max(D[N - 1, 0], D[N - 1, M - 1])
    # backtrack the optimal path family; a path is a list of its rows
    paths: list[list[int]] = []
    n = N - 1
    if D[n, M - 1] < D[n, 0]:
        m, path = 0, []
    else:
        m, path = M - 1, [N - 1]
    while n > 0 or m > 0:
        if n == 0:
            n, m = 0, m - 1
        elif m == 0:
            if D[n - 1, M - 1] > D[n - 1, 0]:
                if path:
                    paths.append(path)
                n, m, path = n - 1, M - 1, [n - 1]
            else:
                n -= 1
        elif m == 1:
            m = 0
        else:
            candidates = [(n - 1, m - 1)]
            if n > 2:
                candidates.append((n - 2, m - 1))
            if m > 2:
                candidates.append((n - 1, m - 2))
            best_value, cell = _NEG, candidates[0]
            for candidate in candidates:
                if D[candidate] > best_value:
                    best_value, cell = D[candidate], candidate
            n, m = cell
            path.append(n)
    paths.append(path)
    n_cells = sum(len(p) for p in paths)
    coverage = sum(p[0] - p[-1] + 1 for p in paths if p)
    score_n = (score - length) / (n_cells + _EPS)
    coverage_n = (coverage - length) / (N + _EPS)
    return 2 * score_n * coverage_n / (score_n + coverage_n + _EPS)


def fitness_scape_plot_loops(S: np.ndarray, max_length: int | None = None) -> np.ndarray:
    """Straightforward reference: fitness[length - 1, start], one DP per segment."""
    N = S.shape[0]
    max_length = N if max_length is None else min(max_length, N)
    fitness = np.zeros((max_length, N))
    for length in range(1, max_length + 1):
        for start in range(N - length + 1):
            fitness[length - 1, start] = _segment_fitness_loops(S, start, length)
    return fitness


# ---------------------------------------------------------------- scape plot, batched
def _length_groups(N: int, max_length: int, budget: int) -> list[list[int]]:
    """Consecutive lengths grouped so that a group's decision bits stay under `budget` bytes."""
    groups, current, pairs = [], [], 0
    for length in range(1, max_length + 1):
        if current and 2 * N * (pairs + N - length + 1) * (length + 1) > budget:
            groups.append(current)
            current, pairs = [], 0
        current.append(length)
        pairs += N - length + 1
    if current:
        groups.append(current)
    return groups


def _forward(S: np.ndarray, lengths: list[int], bits: np.ndarray):
    """DP of all segments whose length is in `lengths`, one (columns x segments) array per row.

    Segments are the contiguous axis, so every step is a whole-array operation. Keeps three
    score rows (they stay in cache) and stores, per cell, the two comparisons the
    backtracking needs. Segments of different lengths share one array padded to the
    longest; columns past a segment's own length hold garbage that no valid column reads.
    Returns (length, start, score, start in elevator, jump, beats_c1, beats_c12) per segment.
    """
    N = S.shape[0]
    width = lengths[-1] + 1  # columns m = 0..longest length; column 0 is the elevator
    inner = max(width - 2, 1)  # columns m >= 2
    seg_len = np.concatenate([np.full(N - L + 1, L) for L in lengths])
    seg_start = np.concatenate([np.arange(N - L + 1) for L in lengths])
    P = seg_len.size
    cols = np.arange(P)
    blocks = list(zip(np.cumsum([0] + [N - L + 1 for L in lengths[:-1]]),
                      np.cumsum([N - L + 1 for L in lengths])))
    S_padded = np.concatenate([S, np.zeros((N, width))], axis=1)
    # windows[n, j, start] = S[n, start + j]
    windows = np.lib.stride_tricks.sliding_window_view(S_padded, width - 1, axis=1).swapaxes(1, 2)
    # beats_c1[n, m-2, seg]: (n-2, m-1) > (n-1, m-1); beats_c12: (n-1, m-2) > the winner
    beats_c1 = bits[:N * P * inner].reshape(N, inner, P)
    beats_c12 = bits[N * P * inner:2 * N * P * inner].reshape(N, inner, P)
    jump = np.zeros((N, P), dtype=bool)  # the elevator at row n+1 would jump to row n
    prev2 = np.full((width, P), _NEG)
    prev = np.full((width, P), _NEG)
    prev[0] = 0.0
    prev[1] = S[0, seg_start]
    jump[0] = prev[seg_len, cols] > prev[0]
    row = np.empty((width, P))
    best = np.empty((inner, P))
    for n in range(1, N):
        np.maximum(prev[0], prev[seg_len, cols], out=row[0])
        np.add(row[0], S[n, seg_start], out=row[1])
        if width > 2:
            c1, c2, c3 = prev[1:-1], prev2[1:-1], prev[:-2]
            np.maximum(c1, c2, out=best)
            np.greater(c2, c1, out=beats_c1[n])
            np.greater(c3, best if n > 2 else c1, out=beats_c12[n])
            np.maximum(best, c3, out=row[2:])
            for lo, hi in blocks:
                row[2:, lo:hi] += windows[n, 1:, :hi - lo]  # S[n, start + m - 1]
        np.greater(row[seg_len, cols], row[0], out=jump[n])
        prev2, prev, row = prev, row, prev2
    score = np.maximum(prev[0], prev[seg_len, cols])
    start_in_elevator = prev[seg_len, cols] < prev[0]
    return seg_len, seg_start, score, start_in_elevator, jump, beats_c1, beats_c12


def _backtrack(N, seg_len, start_in_elevator, jump, beats_c1, beats_c12):
    """Lock-step backtracking of all segments: (cells in the path family, coverage).

    The reference's rules: predecessors tried in the order (n-1, m-1), (n-2, m-1),
    (n-1, m-2) with strict comparisons, the second only below row 2, the third only past
    column 2; the elevator jumps to a path end only when that is strictly better.
    """
    P = seg_len.size
    n = np.full(P, N - 1)
    m = np.where(start_in_elevator, 0, seg_len)
    path_cells = (m > 0).astype(np.int64)
    path_top = np.full(P, N - 1)  # first row of the current path (its end in time)
    path_bottom = np.full(P, N - 1)  # latest row reached by the current path
    n_cells = np.zeros(P, dtype=np.int64)
    coverage = np.zeros(P, dtype=np.int64)
    idx = np.nonzero((n > 0) | (m > 0))[0]
    while idx.size:
        ni, mi = n[idx], m[idx]
        top_row = ni == 0
        elevator = ~top_row & (mi == 0)
        inside = ~top_row & (mi >= 2)
        new_n, new_m = ni.copy(), np.where(mi == 1, 0, mi)  # m == 1 steps into the elevator
        new_m[top_row] -= 1
        if elevator.any():
            e, ne = idx[elevator], ni[elevator]
            jumps = jump[ne - 1, e]
            closing = e[jumps & (path_cells[e] > 0)]
            n_cells[closing] += path_cells[closing]
            coverage[closing] += path_top[closing] - path_bottom[closing] + 1
            started = e[jumps]
            path_cells[started] = 1
            path_top[started] = path_bottom[started] = ne[jumps] - 1
            new_m[elevator] = np.where(jumps, seg_len[e], 0)
            new_n[elevator] = ne - 1
        if inside.any():
            w, nw, mw = idx[inside], ni[inside], mi[inside]
            take3 = (mw > 2) & beats_c12[nw, mw - 2, w]
            take2 = ~take3 & (nw > 2) & beats_c1[nw, mw - 2, w]
            step_n = nw - 1 - take2
            new_n[inside], new_m[inside] = step_n, mw - 1 - take3
            path_cells[w] += 1
            path_bottom[w] = step_n
        n[idx], m[idx] = new_n, new_m
        idx = idx[(new_n > 0) | (new_m > 0)]
    has_path = path_cells > 0
    n_cells[has_path] += path_cells[has_path]
    coverage[has_path] += (path_top - path_bottom + 1)[has_path]
    return n_cells, coverage


def fitness_scape_plot(S: np.ndarray, max_length: int | None = None,
                       memory_budget: int = 64 * 2**20) -> np.ndarray:
    """fitness[length - 1, start] for lengths 1..max_length (default N); 0 where undefined."""
    S = np.asarray(S, dtype=np.float64)
    N = S.shape[0]
    max_length = N if max_length is None else min(max_length, N)
    fitness = np.zeros((max_length, N))
    groups = _length_groups(N, max_length, memory_budget)
    # one buffer for every group's decision bits: fresh pages would cost an extra pass
    bits = np.empty(max(2 * N * sum(N - L + 1 for L in g) * max(g[-1] - 1, 1) for g in groups),
                    dtype=bool)
    for lengths in groups:
        seg_len, seg_start, score, start_in_elevator, *decisions = _forward(S, lengths, bits)
        n_cells, coverage = _backtrack(N, seg_len, start_in_elevator, *decisions)
        score_n = (score - seg_len) / (n_cells + _EPS)
        coverage_n = (coverage - seg_len) / (N + _EPS)
        fitness[seg_len - 1, seg_start] = 2 * score_n * coverage_n / (score_n + coverage_n + _EPS)
    return fitness


def structureness(fitness: np.ndarray, low_s: float, high_s: float | None = None,
                  rate: float = FEATURE_RATE) -> float:
    """SI(low, high): max fitness over segment durations [low_s, high_s] (MusDr's indexing)."""
    high_s = 128.0 if high_s is None else high_s
    low_row, high_row = int(low_s * rate) - 1, int(high_s * rate)
    if low_row >= fitness.shape[0]:
        return 0.0
    return float(np.max(fitness[low_row:high_row]))
