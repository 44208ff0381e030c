"""JamGenerator: one running token context with its KV cache, driven chord by chord.

A prompt cuts the context back to the chord onset (tokens at or after it were a future that will
not happen), appends the chord through the prompt builder and prefills only those tokens. The
first answer is a note at the onset itself; its note-on can leave right after sampling, before
the next forward pass. An overlong context is compacted (rebuilt from its tail) in chunks that a
new chord interrupts. Pure and in-process: realtime.generation_worker runs it in its own process.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import replace

import torch

from lightning_modules.sampling import allow_only, build_processors, pitch_class_mask, sample_next
from realtime.prompt_builder import PromptRequest, RemiPromptBuilder
from realtime.prompt_cache import PromptCache
from realtime.remi_stream import RemiDecoder, RemiVocab
from realtime.step_model import StepModel


class JamGenerator:
    def __init__(
        self,
        model: StepModel,
        vocab: RemiVocab,
        builder: RemiPromptBuilder,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = 0.95,
        first_note_now: bool = True,
        velocity_from_input: bool = True,
        compact_reserve: int = 160,
        compact_keep: int | None = None,
        max_silent_bars: int = 4,
        seed: int = 0,
        prompt_cache_size: int = 32,
        chord_penalty: float | None = None,
    ):
        self.model, self.v, self.builder = model, vocab, builder
        self.first_note_now, self.velocity_from_input = first_note_now, velocity_from_input
        self.compact_reserve = min(compact_reserve, model.max_len // 2)
        self.compact_keep = compact_keep or model.max_len // 2
        self.max_silent_bars = max_silent_bars  # a longer pause than this starts a fresh context
        self.seed = seed
        self.tokens: list[int] = []
        self.states: list[tuple[int, float]] = []  # decoder (bar, beat) after each token
        self.unfed: list[int] = []  # chosen, not yet in the KV cache
        self.logits: torch.Tensor | None = None
        self.decoder = RemiDecoder(vocab)
        self.ctx: int | None = None
        self.request: PromptRequest | None = None
        self.conditioned_until = math.inf
        self.prompt_fed = 0  # tokens the last prompt put through the net (its prefill)
        self.generator = torch.Generator()
        self.counts = {"steps": 0, "prompts": 0, "compactions": 0, "compactions_interrupted": 0}
        # restarting formats: reuse the prefill of earlier prompts sharing a prefix (exact; 0 = off)
        self.prompt_cache = PromptCache(prompt_cache_size)
        # lowers (inf: forbids) pitches whose class is not among the held chord's notes
        self.chord_penalty = chord_penalty
        self.pitch_class = torch.full((vocab.size,), -1, dtype=torch.long)
        for pitch, token in vocab.pitch_ids.items():
            self.pitch_class[token] = pitch % 12
        self.set_sampling(temperature, top_k, top_p)

    # ---- sampling constraints -------------------------------------------------------------
    def set_sampling(self, temperature: float, top_k: int | None, top_p: float | None) -> None:
        self.tail = build_processors(temperature, top_k, top_p)  # temperature, top-k, top-p
        self.sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        self._grammar: dict[tuple, list] = {}
        self._first: dict[tuple, list] = {}

    def _chord(self) -> tuple[int, ...]:
        """Pitch classes of the held chord when chord_penalty is on, else ()."""
        if not self.chord_penalty or self.request is None:
            return ()
        return tuple(sorted({p % 12 for p in self.request.pitches}))

    def _with_chord(self, grammar: list, chord: tuple[int, ...]) -> list:
        """grammar mask, temperature, the chord mask, then the sampling cut (top-k / top-p)."""
        if not chord:
            return grammar + self.tail
        allowed = torch.zeros(12, dtype=torch.bool)
        allowed[list(chord)] = True
        mask = pitch_class_mask(self.pitch_class, allowed, float(self.chord_penalty))
        return grammar + self.tail[:1] + [mask] + self.tail[1:]

    def _first_processors(self) -> list:
        chord = self._chord()
        if chord not in self._first:
            self._first[chord] = self._with_chord([allow_only(self.builder.pitch_range_ids())], chord)
        return self._first[chord]

    def _processors(self) -> list:
        """REMI grammar for the role's line: Pitch -> Velocity -> Duration -> (Pitch | a later
        Position | Bar); after Bar a Position; pitches only in the role's register and up to its
        polyphony; never specials, tempo or drum tokens. Built once per (state, position)."""
        last = self.v.kind[self.tokens[-1]] if self.tokens else "Bar"
        full = self.decoder.notes_here >= self.builder.role.max_notes_per_position
        slot = round(
            (self.decoder.beat - max(self.decoder.bar, 0) * self.v.beats_per_bar)
            * self.v.positions_per_beat
        )
        chord = self._chord()
        key = (last, full, slot, chord)
        if key not in self._grammar:
            role, v = self.builder.role, self.v
            pitches = [] if full else self.builder.pitch_range_ids()
            later = [i for p, i in v.position_ids.items() if p > slot]
            if last == "Pitch":
                allowed = list(v.velocity_ids.values())
            elif last == "Velocity":
                allowed = [
                    i for d, i in v.duration_ids.items() if d <= role.max_duration_beats
                ] or list(v.duration_ids.values())
            elif last == "Bar":
                allowed = list(v.position_ids.values()) + [v.bar_id]
            elif last in ("Position", "Tempo"):
                allowed = pitches or later + [v.bar_id]
            else:  # after a note (or anything unexpected): another note, a later position, next bar
                allowed = pitches + later + [v.bar_id]
            self._grammar[key] = self._with_chord([allow_only(allowed)], chord)
        return self._grammar[key]

    # ---- context bookkeeping --------------------------------------------------------------
    def _append(self, token: int, emit: bool = True) -> list:
        events = self.decoder.feed(token)
        self.tokens.append(token)
        self.states.append((self.decoder.bar, self.decoder.beat))
        self.unfed.append(token)
        return events if emit else []

    def flush(self) -> None:
        """Feed chosen tokens into the model so `logits` predicts the next one."""
        if not self.unfed:
            return
        if len(self.model) + len(self.unfed) > self.model.max_len:
            self.compact(force=True)
            if not self.unfed:
                return
        self.logits = self.model.feed(self.unfed)
        self.unfed = []

    def _cut(self, n: int) -> None:
        fed = len(self.model)
        if n < fed:
            # the logits are stale: drop one more position and refeed its token at the next flush
            self.model.truncate(max(n - 1, 0))
            self.unfed, self.logits = self.tokens[max(n - 1, 0) : n], None
        else:
            self.unfed = self.unfed[: n - fed]
        self.tokens, self.states = self.tokens[:n], self.states[:n]
        if n:
            self.decoder.seek(*self.states[n - 1])

    def _cut_incomplete_note(self) -> None:
        n = len(self.tokens)
        while n > 0 and self.v.kind[self.tokens[n - 1]] in ("Pitch", "Velocity"):
            n -= 1
        if n < len(self.tokens):
            self._cut(n)

    # ---- the three things the runtime asks for --------------------------------------------
    def prompt(self, request: PromptRequest) -> list:
        """Cut the context back to the onset, append the chord; returns the first note's events."""
        self.ctx, self.request = request.ctx, request
        self.counts["prompts"] += 1
        self.generator.manual_seed(self.seed * 1_000_003 + request.ctx)
        if getattr(self.builder, "restarts_context", False):
            self._restart(request)
            self.prompt_fed = self.prompt_cache.last_fed
            return self._first_note(request)
        beats = [s[1] for s in self.states]
        keep = bisect_left(beats, request.beat - 1e-6)  # tokens strictly before the onset
        bars_ahead = request.beat / self.v.beats_per_bar - (self.states[keep - 1][0] if keep else 0)
        if keep <= len(self.builder.start_tokens()) or bars_ahead > self.max_silent_bars:
            self.model.reset()
            self.tokens, self.states, self.unfed, self.logits = [], [], [], None
            self.builder.reset()
            bar = math.floor(request.beat / self.v.beats_per_bar + 1e-9)
            self.decoder.seek(bar - 1, (bar - 1) * self.v.beats_per_bar)
            for token in self.builder.start_tokens():
                self._append(token, emit=False)
        else:
            self._cut(keep)
            self._cut_incomplete_note()
            self.builder.context_bpm = self._last_tempo()
        for token in self.builder.tokens(request, self.decoder.bar, self.decoder.beat):
            self._append(token, emit=False)
        self.decoder.notes_here = 0  # the chord's notes are the musician's, not the line's
        self.prompt_fed = len(self.unfed)
        return self._first_note(request)

    def _restart(self, request: PromptRequest) -> None:
        """Conditioning-first formats: a fresh context per chord (see RoleConditionedPromptBuilder)."""
        self.model.reset()
        self.tokens, self.states, self.unfed, self.logits = [], [], [], None
        bar = math.floor(request.beat / self.v.beats_per_bar + 1e-9)
        self.decoder.seek(bar - 1, (bar - 1) * self.v.beats_per_bar)
        prefix, opening = self.builder.restart_tokens(request)
        for token in prefix:  # conditioning: its Bar tokens are not the part's time
            self.tokens.append(token)
            self.states.append((self.decoder.bar, self.decoder.beat))
            self.unfed.append(token)
        for token in opening:
            self._append(token, emit=False)
        self.logits, self.unfed = self.prompt_cache.prefill(self.model, self.tokens), []
        self.counts.update(self.prompt_cache.counts)
        self.decoder.notes_here = 0
        self.conditioned_until = (bar + self.builder.cond_bars) * self.v.beats_per_bar

    def _first_note(self, request: PromptRequest) -> list:
        if not self.first_note_now:
            return []
        self.flush()  # prefill: only the cut-back tail and the chord tokens are new
        events = self._append(int(sample_next(self.logits[None], self._first_processors(), self.generator)))
        if self.velocity_from_input:
            return events + self._append(self.v.velocity_token(request.velocity))
        self.flush()
        return events + self.step()

    def step(self) -> list:
        """Sample and decode one token (its forward pass happens at the next flush)."""
        if (
            getattr(self.builder, "restarts_context", False)
            and self.decoder.horizon >= self.conditioned_until
        ):
            # the conditioned bars are used up: same chord, fresh conditioning from here
            return self.prompt(replace(self.request, beat=self.conditioned_until))
        self.flush()
        self.counts["steps"] += 1
        return self._append(int(sample_next(self.logits[None], self._processors(), self.generator)))

    def resync(self, beat: float) -> None:
        """Jump the line forward to `beat` (the runtime covered the gap with a fallback phrase)."""
        if self.decoder.horizon >= beat or not self.tokens:
            return
        self._cut_incomplete_note()
        for token in self.builder.advance_tokens(self.decoder.bar, self.decoder.beat, beat):
            self._append(token, emit=False)
        self.decoder.notes_here = 0

    def needs_compaction(self) -> bool:
        if getattr(self.builder, "restarts_context", False):
            return False  # each chord (and each conditioned span) starts a fresh, short context
        return len(self.tokens) > self.model.max_len - self.compact_reserve

    def compact(
        self, force: bool = False, interrupted: Callable[[], bool] = lambda: False, chunk: int = 16
    ) -> bool:
        """Rebuild the cache from the last ~compact_keep tokens, starting at a Bar token when
        there is one. Small chunks: a chord arriving meanwhile waits for one chunk at most."""
        start = max(0, len(self.tokens) - self.compact_keep)
        bars = [i for i in range(start, len(self.tokens)) if self.tokens[i] == self.v.bar_id]
        start = bars[0] if bars else start
        tail, snap = self.tokens[start:], self.model.snapshot()
        self.model.reset()
        logits = None
        for i in range(0, len(tail), chunk):
            if not force and interrupted():
                self.model.restore(snap)
                self.counts["compactions_interrupted"] += 1
                return False
            logits = self.model.feed(tail[i : i + chunk])
        self.tokens, self.states = tail, self.states[start:]
        self.unfed, self.logits = [], logits
        self.counts["compactions"] += 1
        return True

    def _last_tempo(self) -> float | None:
        for token in reversed(self.tokens):
            if self.v.kind[token] == "Tempo":
                return float(self.v.value[token])
        return None
