"""Sampling shared by every generator: composable logit processors and one sampling step."""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch

LogitProcessor = Callable[[torch.Tensor], torch.Tensor]  # (B, V) -> (B, V)


def temperature(t: float) -> LogitProcessor:
    if t <= 0:
        raise ValueError("temperature must be > 0 (use top_k=1 for greedy)")
    return lambda logits: logits / t


def top_k(k: int) -> LogitProcessor:
    def apply(logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))
    return apply


def top_p(p: float) -> LogitProcessor:
    """Nucleus: keep the smallest set of tokens whose probability mass reaches p."""
    def apply(logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        mass_before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)
        drop_sorted = mass_before >= p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        return logits.masked_fill(drop, float("-inf"))
    return apply


def forbid(token_ids: Iterable[int]) -> LogitProcessor:
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    def apply(logits: torch.Tensor) -> torch.Tensor:
        out = logits.clone()
        out[..., ids.to(logits.device)] = float("-inf")
        return out
    return apply


def allow_only(token_ids: Iterable[int]) -> LogitProcessor:
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    def apply(logits: torch.Tensor) -> torch.Tensor:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep[..., ids.to(logits.device)] = True
        return logits.masked_fill(~keep, float("-inf"))
    return apply


def build_processors(temperature_: float = 1.0, top_k_: int | None = None, top_p_: float | None = None,
                     forbidden: Sequence[int] = ()) -> list[LogitProcessor]:
    procs: list[LogitProcessor] = []
    if forbidden:
        procs.append(forbid(forbidden))
    procs.append(temperature(temperature_))
    if top_k_:
        procs.append(top_k(top_k_))
    if top_p_ is not None and top_p_ < 1.0:
        procs.append(top_p(top_p_))
    return procs


def sample_next(logits: torch.Tensor, processors: Sequence[LogitProcessor],
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) logits -> (B,) sampled ids after applying processors in order."""
    for proc in processors:
        logits = proc(logits)
    probs = logits.float().softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
