"""The two simulated devices of the realtime KPI harness: a "keyboard" that plays a chord
progression (from a MIDI file, with MIDI clock) into a JACK port at exact times, and a "DAW" that
records what arrives with timestamps rebuilt from JACK's event times."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import mido
import rtmidi

from datamodules.chords import parse_chord, voice_chord
from realtime.ports import release

PROGRESSION = [
    "C:maj",
    "A:min",
    "F:maj",
    "G:7",
    "E:min",
    "A:min7",
    "D:min7",
    "G:7",
    "C:maj7",
    "F:maj7",
    "B:hdim7",
    "E:7",
    "A:min",
    "D:7",
    "G:maj",
    "C:maj",
]


def tempo_plan(
    minutes: float, bpms: list[float], bars_per_segment: int = 16
) -> list[tuple[int, float]]:
    """(bars, bpm) segments cycling through bpms until `minutes` are filled (4/4 bars)."""
    plan, total, i = [], 0.0, 0
    while total < minutes * 60:
        bpm = bpms[i % len(bpms)]
        bar_s = 4 * 60.0 / bpm
        bars = min(bars_per_segment, max(1, round((minutes * 60 - total) / bar_s)))
        plan.append((bars, bpm))
        total += bars * bar_s
        i += 1
    return plan


def write_progression(
    path: Path,
    plan: list[tuple[int, float]],
    chords: list[str] = PROGRESSION,
    tpq: int = 480,
    velocity: int = 84,
    hold: float = 0.95,
) -> Path:
    """One chord per bar (close voicing from C3), tempo changes between segments."""
    mid = mido.MidiFile(ticks_per_beat=tpq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    events, tick, bar = [], 0, 0
    for bars, bpm in plan:
        events.append((tick, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
        for _ in range(bars):
            pitches = voice_chord(parse_chord(chords[bar % len(chords)]), low=48)
            for p in pitches:
                events.append((tick, 2, mido.Message("note_on", note=p, velocity=velocity)))
                events.append(
                    (tick + int(4 * tpq * hold), 1, mido.Message("note_off", note=p, velocity=0))
                )
            tick += 4 * tpq
            bar += 1
    events.sort(key=lambda e: (e[0], e[1]))
    last = 0
    for t, _, msg in events:
        track.append(msg.copy(time=t - last))
        last = t
    track.append(mido.MetaMessage("end_of_track", time=4 * tpq))
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    return path


def timeline(path: Path, clock: bool = True) -> list[tuple[float, list[int]]]:
    """(seconds from start, bytes) of every note message and, optionally, MIDI clock at 24 ppqn."""
    mid = mido.MidiFile(path)
    tpq = mid.ticks_per_beat
    tempo_changes, notes = [(0, 500000)], []
    tick = 0
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        if msg.type == "set_tempo":
            tempo_changes.append((tick, msg.tempo))
        elif msg.type in ("note_on", "note_off"):
            notes.append((tick, msg.bytes()))
    end_tick = tick
    tempo_changes.sort()

    def seconds(t: int) -> float:
        s, prev_tick, prev_tempo = 0.0, 0, tempo_changes[0][1]
        for ct, tempo in tempo_changes:
            if ct >= t:
                break
            s += (ct - prev_tick) * prev_tempo / 1e6 / tpq
            prev_tick, prev_tempo = ct, tempo
        return s + (t - prev_tick) * prev_tempo / 1e6 / tpq

    out = [(seconds(t), b) for t, b in notes]
    if clock:
        step = tpq // 24
        out += [(seconds(t), [0xF8]) for t in range(0, end_tick + 1, step)]
        out.append((-0.002, [0xFA]))  # MIDI start just before the first tick
    out.sort(key=lambda e: (e[0], e[1][0] != 0xF8))
    return out


def _precise_wait(target: float, spin_s: float = 0.001) -> None:
    while True:
        left = target - time.monotonic()
        if left <= 0:
            return
        if left > spin_s + 0.0005:
            time.sleep(left - spin_s)


def keyboard_main(
    midi_path: str, port: str, ready, go, result_path: str, clock: bool, noise: bool, rt: int = 0
) -> None:
    """Play the file into a virtual port at exact times; record when each message left.

    With `rt` the keyboard runs at that SCHED_FIFO priority, as a hardware clock source or a
    DAW's MIDI thread would: on a loaded machine a normal process sends its MIDI clock late.
    """
    spin_s = 0.001
    if rt:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt))
            spin_s = 0.0002  # realtime wake-ups are precise: spin less
        except (PermissionError, OSError) as err:
            print(f"keyboard keeps normal scheduling ({err})", file=sys.stderr)
    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=port.split(":")[0])
    out.open_virtual_port(port.split(":")[1])
    events = timeline(Path(midi_path), clock)
    ready.set()
    go.wait()
    t0 = time.monotonic() + 0.2
    sent = []
    for i, (t, data) in enumerate(events):
        _precise_wait(t0 + t, spin_s)
        out.send_message(data)
        if data[0] & 0xF0 in (0x80, 0x90):
            sent.append((time.monotonic(), t0 + t, data))
        if noise and i % 97 == 5:  # things a real setup sends that the runtime must ignore
            out.send_message([0xC0, 5])  # program change
            out.send_message([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7])  # sysex identity request
            out.send_message([0xFE])  # active sensing
            out.send_message([0x3C, 0x40])  # stray data bytes (the sysex ended running status)
    out.send_message([0xFC])  # MIDI stop
    Path(result_path).write_text(json.dumps({"t0": t0, "sent": sent}))
    time.sleep(0.3)
    release(out)


def daw_main(port: str, ready, stop, result_path: str, window_s: float = 5.0) -> None:
    """Record the runtime's output. Arrival times: rtmidi's per-event deltas (JACK frame times)
    summed, anchored to the wall clock by the earliest poll in each window (polling delay
    never inflates a timestamp)."""
    inp = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=port.split(":")[0], queue_size_limit=65536)
    inp.ignore_types(sysex=False, timing=False, active_sense=False)
    inp.open_virtual_port(port.split(":")[1])
    ready.set()
    raw = []  # (poll time, cumulative delta, bytes)
    cum = 0.0
    while not stop.is_set():
        msg = inp.get_message()
        if msg is None:
            time.sleep(0.0002)
            continue
        cum += msg[1]
        raw.append((time.monotonic(), cum, msg[0]))
    while (msg := inp.get_message()) is not None:
        cum += msg[1]
        raw.append((time.monotonic(), cum, msg[0]))
    records, i = [], 0
    while i < len(raw):
        j = i
        while j < len(raw) and raw[j][0] - raw[i][0] < window_s:
            j += 1
        anchor = min(p - c for p, c, _ in raw[i:j])
        records += [(anchor + c, p, b) for p, c, b in raw[i:j]]
        i = j
    Path(result_path).write_text(json.dumps(records))
    release(inp)
