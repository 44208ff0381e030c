"""Sampling shared by every generator: composable logit processors and one sampling step.

A processor maps logits (B, V) -> (B, V). One that also needs the ids decoded so far carries
`needs_history = True` and is called as proc(logits, history (B, T)). `stream_tokens` and
`generate_batch` decode with any model of the `model(ids, past, key_padding_mask) ->
(logits, past)` contract (token by token, and batches of prompts of unequal lengths).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import torch

LogitProcessor = Callable[..., torch.Tensor]  # (B, V) [, history (B, T)] -> (B, V)


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


def apply_processors(logits: torch.Tensor, processors: Sequence[LogitProcessor],
                     history: torch.Tensor | None = None) -> torch.Tensor:
    for proc in processors:
        if getattr(proc, "needs_history", False):
            if history is None:
                raise ValueError(f"processor {proc} needs the decoded history; pass history=")
            logits = proc(logits, history)
        else:
            logits = proc(logits)
    return logits


def sample_next(logits: torch.Tensor, processors: Sequence[LogitProcessor],
                generator: torch.Generator | None = None,
                history: torch.Tensor | None = None) -> torch.Tensor:
    """(B, V) logits -> (B,) sampled ids after applying processors in order.

    history: (B, T) ids so far, for processors with `needs_history` (repetition penalty, ...).
    """
    logits = apply_processors(logits, processors, history)
    probs = logits.float().softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def with_history(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LogitProcessor:
    fn.needs_history = True
    return fn


def repetition_penalty(penalty: float, window: int | None = 64,
                       token_ids: Iterable[int] | None = None) -> LogitProcessor:
    """CTRL-style penalty on ids seen in the last `window` steps (all steps if None).

    Positive logits are divided by `penalty`, negative ones multiplied. token_ids restricts it
    to some ids (e.g. Pitch tokens: bar/position tokens repeat by nature).
    """
    if penalty <= 0:
        raise ValueError("repetition penalty must be > 0 (1.0 = off)")
    only = None if token_ids is None else torch.as_tensor(sorted(set(token_ids)), dtype=torch.long)

    def apply(logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        recent = history if window is None else history[:, -window:]
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, recent, True)  # (B, V)
        if only is not None:
            eligible = torch.zeros(logits.size(-1), dtype=torch.bool, device=logits.device)
            eligible[only.to(logits.device)] = True
            seen &= eligible
        penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
        return torch.where(seen, penalised, logits)
    return with_history(apply)


def pitch_class_mask(token_pitch_class: torch.Tensor,
                     allowed: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
                     penalty: float = float("inf")) -> LogitProcessor:
    """Mask (or, with a finite penalty, lower) pitch tokens whose pitch class is not allowed.

    token_pitch_class: (V,) pitch class of each id, -1 for ids that are not pitches.
    allowed: (12,) or (B, 12) bool, or a function history (B, T) -> (B, 12) (chord-aware).
    One gather over the vocabulary: no Python loop over ids.
    """
    pcs = torch.as_tensor(token_pitch_class, dtype=torch.long)
    is_pitch = pcs >= 0

    def apply(logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        ok_pcs = allowed(history) if callable(allowed) else allowed
        ok_pcs = torch.as_tensor(ok_pcs, dtype=torch.bool, device=logits.device)
        ok_pcs = ok_pcs.expand(logits.size(0), 12)  # (B, 12)
        pc = pcs.to(logits.device)
        ok = ok_pcs[:, pc.clamp(min=0)] | ~is_pitch.to(logits.device)[None]  # (B, V)
        if penalty == float("inf"):
            return logits.masked_fill(~ok, float("-inf"))
        return logits - penalty * (~ok).to(logits.dtype)
    if callable(allowed):
        return with_history(apply)
    return lambda logits, history=None: apply(logits, history)  # a fixed set needs no history


def remi_beat_position(history: torch.Tensor, is_bar: torch.Tensor, position_beats: torch.Tensor,
                       beats_per_bar: float = 4.0) -> torch.Tensor:
    """(B,) beat (from the first Bar of `history`) the next REMI token would be placed at.

    is_bar: (V,) bool; position_beats: (V,) float, beat-in-bar of Position ids, -1 elsewhere.
    """
    if history.size(1) == 0:  # the first generated token: the start of the first bar
        return torch.zeros(history.size(0), device=history.device)
    bar_count = is_bar.to(history.device)[history].long().cumsum(1)  # (B, T)
    current = bar_count[:, -1]
    pos = position_beats.to(history.device)[history]  # (B, T)
    in_bar = (bar_count == current[:, None]) & (pos >= 0)
    last = torch.where(in_bar, pos, torch.full_like(pos, -1.0)).amax(dim=1).clamp(min=0)
    return (current - 1).clamp(min=0).to(last.dtype) * beats_per_bar + last


def chord_tone_mask(token_pitch_class: torch.Tensor, is_bar: torch.Tensor,
                    position_beats: torch.Tensor, allowed_per_step: torch.Tensor,
                    steps_per_beat: int, start: int, beats_per_bar: float = 4.0,
                    penalty: float = 2.0) -> LogitProcessor:
    """Pitch classes allowed at the decoded time: allowed_per_step (1|B, N, 12) bool on a grid
    of 1/steps_per_beat from the first Bar at column `start` of the history (REMI)."""
    table = torch.as_tensor(allowed_per_step, dtype=torch.bool)
    if table.dim() == 2:
        table = table[None]

    def allowed(history: torch.Tensor) -> torch.Tensor:
        beat = remi_beat_position(history[:, start:], is_bar, position_beats, beats_per_bar)
        step = (beat * steps_per_beat).long().clamp(0, table.size(1) - 1)  # (B,)
        rows = table.to(history.device).expand(history.size(0), -1, -1)
        return rows[torch.arange(history.size(0), device=history.device), step]  # (B, 12)
    return pitch_class_mask(token_pitch_class, allowed, penalty)


def _cache_len(past) -> int:
    return past[0][0].size(2) if past else 0


def stream_tokens(model, prompt: torch.Tensor, max_new_tokens: int, processors: Sequence[LogitProcessor],
                  eos_id: int | None = None, generator: torch.Generator | None = None,
                  use_cache: bool = True, key_padding_mask: torch.Tensor | None = None,
                  stop: Callable[[torch.Tensor], torch.Tensor] | None = None, fill_id: int | None = None
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Decode up to max_new_tokens after prompt (B, T); yield (ids (B,), logits (B, V)) per step.

    model(ids, past, key_padding_mask) -> (logits, past), with `max_len`; a model whose
    `cache_slides` is true (relative positions) keeps its last max_len - 1 cache entries when
    the cache is full, others rebuild it from the last max_len // 2 ids. Without cache every
    step re-reads the last max_len ids (identical to the cached path within max_len).
    key_padding_mask: (B, T) True on real prompt ids (left padding). A row is finished at EOS
    or when `stop(ids)` says so; finished rows then get `fill_id` (default eos_id).
    Stops early when every row is finished.
    """
    batch, max_len = prompt.size(0), model.max_len
    slides = getattr(model, "cache_slides", False)
    fill = fill_id if fill_id is not None else eos_id
    seq, mask, past = prompt, key_padding_mask, None
    done = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    for _ in range(max_new_tokens):
        if past is not None and _cache_len(past) >= max_len:
            past = model.trim_cache(past, max_len - 1) if slides else None
        if past is None:
            window = max_len if slides or seq.size(1) < max_len else max_len // 2
            ids, keys = seq[:, -window:], None if mask is None else mask[:, -window:]
        else:
            ids = seq[:, -1:]
            keys = None if mask is None else mask[:, -(_cache_len(past) + 1):]
        logits, past = model(ids, past, keys) if keys is not None else model(ids, past)
        if not use_cache:
            past = None
        logits = logits[:, -1]
        nxt = sample_next(logits, processors, generator, history=seq)
        if fill is not None:
            nxt = torch.where(done, torch.full_like(nxt, fill), nxt)
        if eos_id is not None:
            done |= nxt == eos_id
        if stop is not None:
            done |= stop(nxt)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        if mask is not None:
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        yield nxt, logits
        if bool(done.all()) and (eos_id is not None or stop is not None):
            return


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of unequal lengths -> ids (B, T) left-padded and the mask (B, T), True = real."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool, device=device)
    for row, p in enumerate(prompts):
        if len(p):
            ids[row, width - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
            mask[row, width - len(p):] = True
    return ids, mask


def generate_batch(model, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                   processors: Sequence[LogitProcessor], pad_id: int, eos_id: int | None = None,
                   generator: torch.Generator | None = None, use_cache: bool = True,
                   stop: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[list[int]]:
    """Several prompts (any lengths) in one batch; returns each row's new ids up to its end
    (EOS included, `stop` token included). Left padding is exact only with relative
    positions (a padded row's distances are unchanged), so unequal prompts need that."""
    device = next(model.parameters()).device
    equal = len({len(p) for p in prompts}) == 1
    if not equal and not getattr(model, "cache_slides", False):
        raise ValueError("prompts of unequal lengths need a model with relative positions "
                         "(left padding would shift absolute positions)")
    ids, mask = left_pad(prompts, pad_id, device)
    stops: list[torch.Tensor] = []

    def recording_stop(nxt: torch.Tensor) -> torch.Tensor:
        hit = stop(nxt) if stop is not None else torch.zeros_like(nxt, dtype=torch.bool)
        stops.append(hit)
        return hit

    out: list[list[int]] = [[] for _ in prompts]
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for tok, _ in stream_tokens(model, ids, max_new_tokens, processors, eos_id, generator, use_cache,
                                None if equal else mask, recording_stop, fill_id=pad_id):
        for row in torch.nonzero(~finished).flatten().tolist():
            out[row].append(int(tok[row]))
        finished |= stops[-1] | ((tok == eos_id) if eos_id is not None else False)
    return out
