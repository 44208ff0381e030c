"""The jam loop: MIDI in -> chord events -> prompts -> streamed notes -> precise MIDI out.

One thread does all timing work (no GIL handoffs on the hot path): it drains the input port,
commits chords, forwards worker events into the scheduler, checks for underruns, and sends due
messages, sleeping until ~`spin_ms` before the next deadline and spinning the rest. Generation
runs in the worker process. Everything that happens is recorded for the KPI harness.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from realtime.clock import MidiClockFollower, MusicalClock
from realtime.fallback import FallbackPhrases
from realtime.midi_input import ChordEvent, GestureEvent, InputHandler, TriggerEvent
from realtime.prompt_builder import PromptRequest
from realtime.scheduler import NoteScheduler, ScheduledNote

log = logging.getLogger(__name__)


@dataclass
class Context:
    """The line being generated from one chord (or trigger)."""

    ctx: int
    chord: str
    pitches: tuple[int, ...]
    onset: float  # wall time of the chord's first note-on (as received)
    committed: float  # wall time the prompt left for the worker
    beat: float  # quantised onset beat
    horizon: float  # beats decided by the model so far
    first_note_at: float | None = None
    fallback_until: float = -1.0  # beat up to which a fallback phrase covers the line
    notes: int = 0


@dataclass
class RunReport:
    prompts: list[dict] = field(default_factory=list)
    underruns: list[dict] = field(default_factory=list)
    lead: list[tuple[float, float]] = field(default_factory=list)  # (wall, bars ahead)
    tempo: list[tuple[float, float]] = field(default_factory=list)  # (wall, bpm) on change
    worker_errors: list[str] = field(default_factory=list)
    max_loop_gap_ms: float = 0.0
    max_loop_gap_at: float = 0.0
    stale_events: int = 0
    dropped_under_fallback: int = 0
    fallback_notes: int = 0


class JamRuntime:
    def __init__(
        self, cfg, inport, outport, worker, clock: MusicalClock | None = None, watcher=None
    ):
        self.cfg, self.inport, self.outport, self.worker = cfg, inport, outport, worker
        self.watcher = watcher
        self.clock = clock or MusicalClock(cfg.clock.bpm, cfg.clock.beats_per_bar)
        self.follower = MidiClockFollower(self.clock) if cfg.clock.follow_midi_clock else None
        if self.follower is not None and cfg.report.get("clock_trace"):
            self.follower.trace = []
        self.input = InputHandler(**cfg.input, clock_follower=self.follower)
        self.scheduler = NoteScheduler(self.clock, self._send, **cfg.schedule.scheduler)
        self.fallback = FallbackPhrases(**cfg.fallback.phrases)
        self.report = RunReport()
        self.context: Context | None = None
        self.next_ctx = 0
        self.anchored = cfg.clock.anchor != "first_chord"
        self.stop_requested = False
        self.send_errors = 0
        self._clock_version_sent = -1
        self._last_lead_sample = 0.0

    # ---- output ---------------------------------------------------------------------------
    def _send(self, data: list[int]) -> None:
        try:
            self.outport.send(data)
        except Exception as err:  # a vanished port must not end the performance
            self.send_errors += 1
            log.warning("send failed (%s): %s", data, err)

    # ---- input ----------------------------------------------------------------------------
    def _on_chord(self, ev: ChordEvent, now: float) -> None:
        if not self.anchored:  # the first chord is bar 0, beat 0 (unless a MIDI clock leads)
            self.clock.reanchor(0.0, ev.time)
            self.anchored = True
        grid = self.cfg.schedule.onset_grid_beats
        beat = max(self.clock.quantize(self.clock.beat_at(ev.time), grid), 0.0)
        self.next_ctx += 1
        ctx = self.next_ctx
        self._sync_clock()
        request = PromptRequest(
            ctx, beat, ev.pitches, ev.velocity, str(ev.chord), self.clock.bpm, now
        )
        self.worker.send("prompt", request)
        # queued notes of the previous line at or after the new onset will not happen
        self.scheduler.cancel_unsent(lambda n: n.ctx == ctx or n.start_beat < beat - 1e-6)
        self.context = Context(ctx, str(ev.chord), ev.pitches, ev.time, now, beat, horizon=beat)
        self.report.prompts.append(
            {
                "ctx": ctx,
                "chord": str(ev.chord),
                "pitches": list(ev.pitches),
                "onset": ev.time,
                "committed": now,
                "beat": beat,
                "restrike": ev.restrike,
                "bpm": self.clock.bpm,
            }
        )

    def _handle_input(self, now: float) -> None:
        for data, arrived in self.inport.drain():
            self.input.feed_bytes(data, arrived)
        for ev in self.input.due(now):
            if isinstance(ev, ChordEvent):
                self._on_chord(ev, now)
            elif isinstance(ev, TriggerEvent) and self.context is not None:
                held = tuple(sorted(self.input.held)) or self.context.pitches
                self._on_chord(ChordEvent(ev.time, now, self.input.current, held, 80), now)
            elif isinstance(ev, GestureEvent) and ev.name == "temperature":
                self.worker.send("sampling", {"temperature": ev.value})

    def _sync_clock(self) -> None:
        if self.clock.version != self._clock_version_sent:
            self._clock_version_sent = self.clock.version
            self.worker.send("clock", self.clock.state())
            if not self.report.tempo or abs(self.report.tempo[-1][1] - self.clock.bpm) > 1e-6:
                self.report.tempo.append((time.monotonic(), self.clock.bpm))

    # ---- worker events --------------------------------------------------------------------
    def _handle_worker(self, now: float) -> None:
        for msg in self.worker.poll():
            kind = msg[0]
            if kind == "error":
                self.report.worker_errors.append(msg[1])
                log.error("generation worker error:\n%s", msg[1])
                continue
            ctx = self.context
            if ctx is None or msg[1] != ctx.ctx:
                self.report.stale_events += kind in ("on", "end")
                continue
            if kind == "on":
                self._on_note(ctx, msg, now)
            elif kind == "end":
                note = self._notes_by_id.get((msg[1], msg[2]))
                if note is not None:
                    self.scheduler.set_end(note, msg[3])
            elif kind == "horizon":
                ctx.horizon = max(ctx.horizon, msg[2])
            elif kind == "prompted":
                self.report.prompts[-1]["prompted"] = msg[2]
                self.report.prompts[-1]["prefill_tokens"] = msg[4]  # put through the net

    def _on_note(self, ctx: Context, msg: tuple, now: float) -> None:
        _, _, note_id, pitch, velocity, beat, generated = msg
        if beat < ctx.fallback_until - 1e-6:
            self.report.dropped_under_fallback += 1
            return
        first = ctx.first_note_at is None
        immediate = first and self.cfg.schedule.first_note == "immediate"
        start = beat
        if first and not immediate and self.clock.time_at(beat) < now:  # grid mode, onset passed:
            grid = self.cfg.schedule.onset_grid_beats  # the next grid step
            start = math.ceil(self.clock.beat_at(now) / grid) * grid
        note = ScheduledNote(
            ctx.ctx, pitch, velocity, start, start_wall=now if immediate else None, first=first
        )
        if first:
            ctx.first_note_at = now
            self.report.prompts[-1].update(
                first_note=now,
                first_beat=beat,
                generated=generated,
                grid_time=self.clock.time_at(beat),
            )
        ctx.notes += 1
        self._notes_by_id[(ctx.ctx, note_id)] = self.scheduler.add(note)
        if len(self._notes_by_id) > 4096:
            self._notes_by_id = dict(list(self._notes_by_id.items())[-1024:])

    # ---- underruns ------------------------------------------------------------------------
    def _check_underrun(self, now: float) -> None:
        ctx = self.context
        if ctx is None:
            return
        grace = self.cfg.fallback.grace_ms / 1000.0
        beat_now = self.clock.beat_at(now)
        if beat_now < ctx.fallback_until:
            return
        if ctx.first_note_at is None:
            starving = now - ctx.committed > self.cfg.fallback.first_note_timeout_ms / 1000.0
        else:
            starving = now > self.clock.time_at(max(ctx.horizon, ctx.fallback_until)) + grace
        if not starving or not self.cfg.fallback.enabled:
            return
        notes, end = self.fallback.phrase(ctx.pitches, beat_now, self.clock.beats_per_bar)
        for i, pn in enumerate(notes):
            note = ScheduledNote(
                ctx.ctx,
                pn.pitch,
                pn.velocity,
                pn.beat,
                pn.beat + pn.duration,
                start_wall=now if i == 0 else None,
                source="fallback",
            )
            self.scheduler.add(note)
        self.report.fallback_notes += len(notes)
        ctx.fallback_until = end
        if ctx.first_note_at is None:
            ctx.first_note_at = now
        self.worker.send("resync", ctx.ctx, end)
        self.report.underruns.append(
            {
                "time": now,
                "ctx": ctx.ctx,
                "beat": beat_now,
                "horizon": ctx.horizon,
                "lag_ms": 1000 * (now - self.clock.time_at(ctx.horizon)),
                "fallback_until": end,
                "worker_alive": self.worker.alive,
            }
        )

    # ---- the loop -------------------------------------------------------------------------
    def run(self, duration_s: float | None = None) -> None:
        cfg = self.cfg.loop
        poll_s, spin_s = cfg.poll_interval_ms / 1000.0, cfg.spin_ms / 1000.0
        self._notes_by_id: dict[tuple[int, int], ScheduledNote] = {}
        start = time.monotonic()
        self._sync_clock()
        lead_every = self.cfg.report.lead_sample_ms / 1000.0
        # no automatic garbage collection in the loop (a full pass stalls it for tens of ms):
        # young generations are collected when nothing is due for a while
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            self._loop(start, duration_s, poll_s, spin_s, lead_every)
        finally:
            gc.enable()

    def _loop(
        self, start: float, duration_s, poll_s: float, spin_s: float, lead_every: float
    ) -> None:
        last = last_gc = start
        while not self.stop_requested:
            now = time.monotonic()
            if now - start > 0.5 and 1000 * (now - last) > self.report.max_loop_gap_ms:
                self.report.max_loop_gap_ms = 1000 * (now - last)  # startup allocations excluded
                self.report.max_loop_gap_at = now
            last = now
            if duration_s is not None and now - start >= duration_s:
                break
            self._handle_input(now)
            if self.scheduler.retime_if_clock_changed():
                self._sync_clock()
            self._handle_worker(now)
            self._check_underrun(now)
            self.scheduler.run_due()
            if self.watcher is not None:
                self.watcher.poll(now)
            if self.context is not None and now - self._last_lead_sample >= lead_every:
                self._last_lead_sample = now
                lead = (self.context.horizon - self.clock.beat_at(now)) / self.clock.beats_per_bar
                self.report.lead.append((now, lead))
            if now - last_gc > 1.0 and self._idle_for(now, 0.01):
                gc.collect(1)
                last_gc = time.monotonic()
            self._wait(poll_s, spin_s)

    def _idle_for(self, now: float, seconds: float) -> bool:
        due, settle = self.scheduler.next_due(), self.input.next_deadline()
        return (due is None or due - now > seconds) and settle is None

    def _wait(self, poll_s: float, spin_s: float) -> None:
        """Sleep until the next poll, or until spin_s before the next send, then spin to it."""
        now = time.monotonic()
        due = self.scheduler.next_due()
        settle = self.input.next_deadline()
        wake = now + poll_s
        if settle is not None:
            wake = min(wake, settle)
        if due is not None and due - now < poll_s + spin_s:
            if due - spin_s > now:
                time.sleep(due - spin_s - now)
            while time.monotonic() < due:
                pass
            return
        if wake > now:
            time.sleep(wake - now)

    def shutdown(self) -> None:
        """All notes off on every configured channel; then stop the worker."""
        self.scheduler.all_notes_off(list(self.cfg.shutdown.channels))

    def summary(self) -> dict:
        """Everything the KPI harness and the user need, as plain JSON-able data."""
        st = self.scheduler.stats
        return {
            "pid": os.getpid(),
            "sends": [asdict(r) for r in st.log],
            "prompts": self.report.prompts,
            "underruns": self.report.underruns,
            "lead": self.report.lead,
            "tempo": self.report.tempo,
            "counts": {
                "sent_on": st.sent_on,
                "sent_off": st.sent_off,
                "late_dropped": st.late_dropped,
                "restrikes": st.restrikes,
                "cancelled": st.cancelled,
                "stale_worker_events": self.report.stale_events,
                "dropped_under_fallback": self.report.dropped_under_fallback,
                "fallback_notes": self.report.fallback_notes,
                "underruns": len(self.report.underruns),
                "send_errors": self.send_errors,
                "worker_errors": len(self.report.worker_errors),
                "input_messages": self.input.stats.messages,
                "input_parse_errors": self.input.stats.parse_errors,
                "midi_clock_ticks": self.follower.ticks_seen if self.follower else 0,
            },
            "input_ignored": dict(self.input.stats.ignored),
            "max_loop_gap_ms": self.report.max_loop_gap_ms,
            "max_loop_gap_at": self.report.max_loop_gap_at,
            "worker_errors": self.report.worker_errors,
            "clock_trace": self.follower.trace if self.follower is not None else None,
            "midi_clock_ticks_lost": self.follower.ticks_lost if self.follower is not None else 0,
        }


def write_summary(path: str | Path, summary: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))
    return path
