"""Exact reuse of prefilled prompts for conditioning-first formats (one fresh context per chord).

A role-conditioned prompt (`BOS ROLE TEMPO <chord bars> COND_SEP Bar Position`) restarts the
context on every chord, so its ~16-27 tokens would go through the whole net each time. But a
causal net's cache and logits after a token sequence depend on that sequence only: the same
tokens give the same state. PromptCache keeps the states of recent prompts (LRU) and, for a
new prompt, restores the stored one sharing the longest prefix with it and prefills only the
rest: a repeated chord (same pitches, onset position and tempo) costs no forward pass at all, a
new one at the same tempo skips its shared opening (BOS ROLE TEMPO Bar Position Tempo). The
tokens the model sees are exactly the trained format; only the work to get there is saved.

Safe because StepModel states are never modified in place (see StepModel.snapshot): a restored
state is extended by new tensors, never written into.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from realtime.step_model import StepModel


class PromptCache:
    def __init__(self, size: int = 32):
        self.size = size
        self.entries: OrderedDict[tuple[int, ...], tuple[Any, torch.Tensor]] = OrderedDict()
        self.counts = {
            "prompt_cache_hits": 0,
            "prompt_cache_partial": 0,
            "prompt_cache_misses": 0,
            "prompt_tokens_prefilled": 0,
        }
        self.last_fed = 0  # tokens the last prefill put through the net

    def prefill(self, model: StepModel, tokens: Sequence[int]) -> torch.Tensor:
        """Leave `model` holding exactly `tokens` (from a reset context); returns the (V,) logits
        for the token after them, as `model.reset(); model.feed(tokens)` would."""
        key = tuple(tokens)
        if not key:
            raise ValueError("PromptCache.prefill needs at least one token")
        if self.size and key in self.entries:
            self.entries.move_to_end(key)
            state, logits = self.entries[key]
            model.restore(state)
            self.counts["prompt_cache_hits"] += 1
            self.last_fed = 0
            return logits
        reuse, best = 0, None
        for stored in self.entries:
            n = _common_prefix(stored, key)
            if n > reuse:
                reuse, best = n, stored
        reuse = min(reuse, len(key) - 1)  # at least one token is fed: its logits are the answer
        if best is not None and reuse > 0:
            model.restore(self.entries[best][0])
            model.truncate(reuse)
            self.counts["prompt_cache_partial"] += 1
        else:
            model.reset()
            reuse = 0
            self.counts["prompt_cache_misses"] += 1
        logits = model.feed(list(key[reuse:]))
        self.last_fed = len(key) - reuse
        self.counts["prompt_tokens_prefilled"] += self.last_fed
        if self.size:
            self.entries[key] = (model.snapshot(), logits)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return logits

    def clear(self) -> None:
        self.entries.clear()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
