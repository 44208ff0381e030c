"""On-the-fly augmentation as pure functions over token ids, built from the vocabulary.

Transpose shifts Pitch tokens, velocity scaling remaps Velocity tokens, time stretch remaps
Tempo tokens (in a beat-based vocabulary, stretching time is changing tempo).
"""
from __future__ import annotations

from dataclasses import dataclass

import miditok
import numpy as np

from datamodules.tokenizer import token_ids_matching


def _value_table(tokenizer: miditok.MusicTokenizer, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (ids, values) of a numeric token type; empty arrays if the vocab has none."""
    pairs = sorted((float(v), i) for i, v in token_ids_matching(tokenizer, prefix).items())
    return np.array([i for _, i in pairs], dtype=np.int64), np.array([v for v, _ in pairs])


def remap_to_nearest(ids: np.ndarray, table_ids: np.ndarray, table_values: np.ndarray,
                     transform) -> np.ndarray:
    """Replace each token of a numeric type by the token whose value is nearest transform(value)."""
    if table_ids.size == 0:
        return ids
    lookup = np.full(int(max(ids.max(initial=0), table_ids.max())) + 1, -1, dtype=np.int64)
    lookup[table_ids] = np.arange(table_ids.size)
    pos = np.nonzero((ids < lookup.size) & (lookup[np.minimum(ids, lookup.size - 1)] >= 0))[0]
    if pos.size == 0:
        return ids
    new_values = transform(table_values[lookup[ids[pos]]])
    nearest = np.abs(table_values[None, :] - new_values[:, None]).argmin(axis=1)
    out = ids.copy()
    out[pos] = table_ids[nearest]
    return out


def transpose(ids: np.ndarray, pitch_ids: np.ndarray, pitch_values: np.ndarray, semitones: int) -> np.ndarray:
    """Shift every Pitch token by `semitones`, clamped so no note leaves the vocabulary's range."""
    is_pitch = np.isin(ids, pitch_ids)
    if semitones == 0 or not is_pitch.any():
        return ids
    present = pitch_values[np.searchsorted(pitch_ids, ids[is_pitch])]
    semitones = int(np.clip(semitones, pitch_values.min() - present.min(), pitch_values.max() - present.max()))
    return remap_to_nearest(ids, pitch_ids, pitch_values, lambda v: v + semitones)


@dataclass
class TokenAugmenter:
    """Applies each augmentation with its probability; a seeded Generator makes it reproducible."""

    tokenizer: miditok.MusicTokenizer
    transpose_p: float = 0.5
    max_semitones: int = 6
    velocity_p: float = 0.3
    velocity_scale: tuple[float, float] = (0.8, 1.2)
    stretch_p: float = 0.3
    stretch: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self):
        self.pitch = _value_table(self.tokenizer, "Pitch")
        self.velocity = _value_table(self.tokenizer, "Velocity")
        self.tempo = _value_table(self.tokenizer, "Tempo")

    def __call__(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if self.max_semitones and rng.random() < self.transpose_p:
            ids = transpose(ids, *self.pitch, int(rng.integers(-self.max_semitones, self.max_semitones + 1)))
        if rng.random() < self.velocity_p:
            factor = rng.uniform(*self.velocity_scale)
            ids = remap_to_nearest(ids, *self.velocity, lambda v: np.clip(v * factor, 1, 127))
        if rng.random() < self.stretch_p:
            factor = rng.uniform(*self.stretch)  # >1 = longer = slower
            ids = remap_to_nearest(ids, *self.tempo, lambda v: v / factor)
        return ids
