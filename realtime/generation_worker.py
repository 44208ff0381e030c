"""KV-cached generation off the timing thread: a separate process that streams notes as they are sampled.

worker_main runs a realtime.jam_generator.JamGenerator in its own process (`multiprocessing`
spawn) behind a Pipe: it generates while less than `lead_bars[0]` is decided ahead of now (up to
`lead_bars[1]`), answers a prompt at once (the first note-on leaves before the next forward pass),
compacts the context when idle, and sends every note-on / note end / horizon as it is decoded.
realtime.worker_handle.WorkerHandle is the runtime's side of it (and keeps torch out of the timing
process).
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import time
import traceback

import torch

from realtime.clock import MusicalClock
from realtime.jam_generator import JamGenerator
from realtime.prompt_builder import PromptRequest
from realtime.remi_stream import NoteEnd, NoteStart, RemiVocab

log = logging.getLogger(__name__)


def build_generator(cfg: dict) -> tuple[JamGenerator, dict]:
    """Load the checkpoint and build the step model, prompt builder and generator from config."""
    from hydra.utils import instantiate

    from lightning_modules.checkpoint import load_module

    module = load_module(cfg["ckpt_path"])
    vocab = RemiVocab(module.tokenizer)
    model = instantiate(cfg["step_model"], module=module)
    builder = instantiate(cfg["prompt_builder"], vocab=vocab, tokenizer=module.tokenizer)
    gen_defaults = dict(getattr(module, "generation", {}) or {})
    sampling = {
        k: cfg["sampling"].get(k) if cfg["sampling"].get(k) is not None else gen_defaults.get(k)
        for k in ("temperature", "top_k", "top_p")
    }
    sampling["temperature"] = sampling["temperature"] or 1.0
    generator = JamGenerator(model, vocab, builder, **sampling, **cfg["generator"])
    info = {
        "family": type(module).__name__,
        "max_len": model.max_len,
        "vocab": vocab.size,
        "backend": type(model).__name__,
        **sampling,
    }
    return generator, info


def warm_up(generator: JamGenerator, steps: int = 24) -> None:
    """First calls of a fresh model are slow (allocations, kernel selection): pay that now."""
    for ctx, beat in ((-2, 0.0), (-1, 4.0)):
        generator.prompt(PromptRequest(ctx, beat, (48, 52, 55), 80, "C:maj", 120.0))
        for _ in range(steps):
            generator.step()
        generator.flush()
    generator.compact(force=True)
    generator.prompt_cache.clear()  # the run's prompts only: no head start from warm-up chords
    generator.model.reset()
    generator.builder.reset()
    generator.tokens, generator.states, generator.unfed, generator.logits = [], [], [], None
    generator.ctx = None


def _send_events(conn, ctx: int, events: list) -> None:
    now = time.monotonic()
    for ev in events:
        if isinstance(ev, NoteStart):
            conn.send(("on", ctx, ev.note_id, ev.pitch, ev.velocity, ev.beat, now))
        elif isinstance(ev, NoteEnd):
            conn.send(("end", ctx, ev.note_id, ev.beat))


class _Inbox:
    """The worker's messages. Clock and sampling updates are applied as they are read (also
    in the middle of a compaction); anything else waits here and interrupts a compaction."""

    def __init__(self, conn, generator: JamGenerator):
        self.conn, self.generator = conn, generator
        self.clock: MusicalClock | None = None
        self.waiting: list[tuple] = []

    def read(self, timeout: float = 0.0) -> None:
        if not self.conn.poll(timeout):
            return
        while self.conn.poll(0):
            msg = self.conn.recv()
            if msg[0] == "clock":
                self.clock = MusicalClock.from_state(msg[1])
            elif msg[0] == "sampling":
                self.generator.set_sampling(**{**self.generator.sampling, **msg[1]})
            else:
                self.waiting.append(msg)

    def urgent(self) -> bool:
        self.read()
        return bool(self.waiting)

    def take(self) -> list[tuple]:
        out, self.waiting = self.waiting, []
        return out


def worker_main(conn, cfg: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the runtime stops us
    try:
        torch.set_num_threads(int(cfg.get("num_threads") or 1))
        generator, info = build_generator(cfg)
        warm_up(generator)
    except Exception:  # report to the runtime, which names the cause and exits
        conn.send(("error", traceback.format_exc()))
        return
    # no automatic garbage collection while playing: a full pass over torch's objects takes tens
    # of milliseconds; young generations are collected when idle instead
    gc.collect()
    gc.freeze()
    gc.disable()
    conn.send(("ready", info))
    try:
        _serve(conn, cfg, generator, info)
    except (EOFError, BrokenPipeError):  # the runtime went away: nothing to report to
        return


def _serve(conn, cfg: dict, generator: JamGenerator, info: dict) -> None:
    lead_min, lead_max = cfg["lead_bars"][0], cfg["lead_bars"][1]
    step_delay = float(cfg.get("step_delay_ms") or 0) / 1000.0  # >0 simulates a slow model
    inbox = _Inbox(conn, generator)
    sent_horizon, refilling = None, True
    cpu0, last_gc = time.process_time(), time.monotonic()
    while True:
        clock = inbox.clock
        active = clock is not None and generator.ctx is not None
        lead = (
            (generator.decoder.horizon - clock.now_beat()) / clock.beats_per_bar
            if active
            else math.inf
        )
        busy = active and (lead < lead_min or (refilling and lead < lead_max))
        inbox.read(0 if busy else 0.002)
        msgs = inbox.take()
        if msgs:
            prompts = [m for m in msgs if m[0] == "prompt"]
            for msg in msgs:
                if msg[0] == "stop":
                    conn.send(
                        ("stats", {**generator.counts, "cpu_s": time.process_time() - cpu0, **info})
                    )
                    return
                if msg[0] == "resync" and msg[1] == generator.ctx:
                    generator.resync(msg[2])
                elif msg[0] == "prompt" and msg is prompts[-1]:  # only the latest chord matters
                    request = msg[1]
                    _send_events(conn, request.ctx, generator.prompt(request))
                    conn.send(
                        (
                            "prompted",
                            request.ctx,
                            time.monotonic(),
                            len(generator.tokens),
                            generator.prompt_fed,
                        )
                    )
                    sent_horizon, refilling = None, True
                    generator.flush()
            continue
        if busy:
            if step_delay:
                time.sleep(step_delay)
            _send_events(conn, generator.ctx, generator.step())
            if generator.decoder.horizon != sent_horizon:
                sent_horizon = generator.decoder.horizon
                conn.send(("horizon", generator.ctx, sent_horizon))
            refilling = lead < lead_max
        elif generator.needs_compaction():
            generator.flush()
            generator.compact(interrupted=inbox.urgent)
        else:
            refilling = lead < lead_min
            if time.monotonic() - last_gc > 1.0:
                gc.collect(1)
                last_gc = time.monotonic()
