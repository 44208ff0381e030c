"""The jam loop with scripted ports and a scripted worker: prompts, streaming, underrun -> fallback,
tempo change mid-stream, clean shutdown. No model, no JACK: the loop's logic in isolation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from realtime.runtime import JamRuntime

CONF = str(Path(__file__).resolve().parents[2] / "conf")


class ScriptedInput:
    def __init__(self):
        self.pending: list[list[int]] = []

    def drain(self):
        out, self.pending = [(m, time.monotonic()) for m in self.pending], []
        return out


class RecordingOutput:
    def __init__(self):
        self.messages: list[tuple[float, list[int]]] = []

    def send(self, data):
        self.messages.append((time.monotonic(), list(data)))


class SlowWorker:
    """Answers a prompt with one note and a horizon half a beat ahead, then nothing more:
    a model slower than realtime."""

    alive = True

    def __init__(self):
        self.received: list[tuple] = []
        self.outbox: list[tuple] = []

    def send(self, *msg):
        self.received.append(msg)
        if msg[0] == "prompt":
            req = msg[1]
            self.outbox += [
                ("on", req.ctx, 0, 76, 90, req.beat, time.monotonic()),
                ("end", req.ctx, 0, req.beat + 0.5),
                ("horizon", req.ctx, req.beat + 0.5),
            ]
        return True

    def poll(self):
        out, self.outbox = self.outbox, []
        return out


def config(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("realtime", overrides=["ckpt_path=unused", "clock.bpm=240", *overrides])


def run_for(runtime: JamRuntime, seconds: float) -> None:
    runtime.run(duration_s=seconds)


def test_slow_model_triggers_fallback_at_once_and_it_is_reported():
    inp, out, worker = ScriptedInput(), RecordingOutput(), SlowWorker()
    runtime = JamRuntime(config("fallback.grace_ms=50"), inp, out, worker)
    inp.pending += [[0x90, 57, 90], [0x90, 60, 90], [0x90, 64, 90]]
    run_for(runtime, 2.0)
    runtime.shutdown()
    summary = runtime.summary()
    prompts = [m for m in worker.received if m[0] == "prompt"]
    assert len(prompts) == 1 and prompts[0][1].pitches == (57, 60, 64)
    assert worker.received[0][0] == "clock"  # the worker knows the tempo before any prompt
    # the model's one note, then fallback phrases over A minor while it stays behind
    underruns = summary["underruns"]
    assert len(underruns) >= 2 and summary["counts"]["fallback_notes"] >= 4
    resyncs = [m for m in worker.received if m[0] == "resync"]
    assert [m[2] for m in resyncs] == [u["fallback_until"] for u in underruns]
    fallback_ons = [s for s in summary["sends"] if s["source"] == "fallback" and s["kind"] == "on"]
    assert fallback_ons and all(s["pitch"] % 12 in {9, 0, 4} for s in fallback_ons)
    first_fallback = min(s["sent"] for s in fallback_ons)
    assert first_fallback - underruns[0]["time"] < 0.005  # plays at once, not at the next grid step
    # no dead air from the runtime: after the first note, silences stay short
    ons = sorted(t for t, m in out.messages if m[0] & 0xF0 == 0x90)
    assert max(b - a for a, b in zip(ons, ons[1:])) < 0.25
    # shutdown: every note closed, CC 123 on all 16 channels
    on = sum(1 for _, m in out.messages if m[0] & 0xF0 == 0x90)
    off = sum(1 for _, m in out.messages if m[0] & 0xF0 == 0x80)
    assert on == off
    assert sum(1 for _, m in out.messages if m[0] & 0xF0 == 0xB0 and m[1] == 123) == 16


def test_midi_clock_tempo_change_mid_stream_reaches_clock_worker_and_queue():
    inp, out, worker = ScriptedInput(), RecordingOutput(), SlowWorker()
    runtime = JamRuntime(config("fallback.enabled=false"), inp, out, worker)
    inp.pending += [[0xFA]]
    start = time.monotonic()

    def ticks(bpm, beats):
        interval, t0 = 60.0 / bpm / 24, time.monotonic()
        for i in range(24 * beats):
            time.sleep(max(0.0, t0 + i * interval - time.monotonic()))  # absolute times: no drift
            inp.pending.append([0xF8])
            runtime._handle_input(time.monotonic())
            if runtime.scheduler.retime_if_clock_changed():
                runtime._sync_clock()

    ticks(180, 2)
    assert runtime.clock.bpm == pytest.approx(180, rel=0.03)
    ticks(100, 2)
    assert runtime.clock.bpm == pytest.approx(100, rel=0.03)
    clocks = [m[1] for m in worker.received if m[0] == "clock"]
    assert any(abs(c.bpm - 180) < 6 for c in clocks) and abs(clocks[-1].bpm - 100) < 3
    assert runtime.clock.beat_at(time.monotonic()) == pytest.approx(4.0, abs=0.15)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("mode", ["immediate", "grid"])
def test_first_answer_sounds_when_generated_or_on_the_next_grid_step(mode):
    inp, out, worker = ScriptedInput(), RecordingOutput(), SlowWorker()
    cfg = config(
        f"schedule.first_note={mode}", "schedule.onset_grid_beats=0.25", "fallback.enabled=false"
    )
    runtime = JamRuntime(cfg, inp, out, worker)
    inp.pending += [[0x90, 57, 90], [0x90, 60, 90], [0x90, 64, 90]]
    run_for(runtime, 0.4)
    runtime.shutdown()
    [prompt] = runtime.report.prompts
    [first] = [s for s in runtime.summary()["sends"] if s["kind"] == "on"]
    assert first["first"] and first["pitch"] == 76
    delay = first["sent"] - prompt["onset"]
    if mode == "immediate":
        assert delay < 0.02  # as soon as the worker's note arrived
    else:  # 240 bpm: the onset's grid time had passed, so the next 16th, 62.5 ms later
        assert delay == pytest.approx(0.0625, abs=0.005)
