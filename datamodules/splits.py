"""Deterministic train/val/test assignment by piece: a piece never straddles two splits."""
from __future__ import annotations

import hashlib
import math


def split_by_piece(piece_ids: list[str], val_frac: float = 0.1, test_frac: float = 0.1,
                   seed: int = 0) -> dict[str, str]:
    """{piece_id: "train"|"val"|"test"}, stable under reordering and independent of other pieces'
    presence for large sets (pieces are ranked by a seeded hash). Val/test get at least one piece
    each when there are three or more pieces and their fraction is > 0."""
    pieces = sorted(set(piece_ids), key=lambda p: hashlib.sha1(f"{seed}:{p}".encode()).hexdigest())
    n = len(pieces)
    n_test = min(n - 1, math.ceil(n * test_frac)) if test_frac > 0 and n >= 3 else 0
    n_val = min(n - 1 - n_test, math.ceil(n * val_frac)) if val_frac > 0 and n >= 3 else 0
    out = {p: "test" for p in pieces[:n_test]}
    out.update({p: "val" for p in pieces[n_test:n_test + n_val]})
    out.update({p: "train" for p in pieces[n_test + n_val:]})
    return out
