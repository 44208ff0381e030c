"""Chord detection from held notes and the input handler's robustness to unexpected bytes."""

from __future__ import annotations

import mido
import pytest

from realtime.clock import MidiClockFollower, MusicalClock
from realtime.midi_input import ChordEvent, GestureEvent, InputHandler, TriggerEvent, detect_chord


@pytest.mark.parametrize(
    "pitches,label",
    [
        ((60, 64, 67), "C:maj"),
        ((57, 60, 64), "A:min"),
        ((55, 59, 62, 65), "G:7"),
        ((62, 65, 69, 72), "D:min7"),
        ((64, 67, 72), "C:maj/E"),
        ((59, 62, 65, 69), "B:hdim7"),
        ((48, 55, 64, 71), "C:maj7"),
    ],
)
def test_detect_chord(pitches, label):
    assert str(detect_chord(pitches)) == label


def test_detect_chord_needs_two_pitch_classes():
    assert detect_chord([60]) is None and detect_chord([60, 72]) is None


def _play(handler: InputHandler, pitches, at: float, velocity: int = 90) -> None:
    for p in pitches:
        handler.feed(mido.Message("note_on", note=p, velocity=velocity), at)


def test_one_event_per_chord_after_the_settle_window():
    handler = InputHandler(settle_ms=2.0)
    _play(handler, (60, 64), 1.0)
    assert handler.due(1.001) == []  # still settling
    _play(handler, (67,), 1.0015)
    [event] = handler.due(1.003)
    assert isinstance(event, ChordEvent) and str(event.chord) == "C:maj"
    assert event.time == 1.0 and event.pitches == (60, 64, 67) and event.velocity == 90
    assert handler.next_deadline() is None


def test_chord_change_restrike_and_same_chord_held():
    handler = InputHandler(settle_ms=1.0)
    _play(handler, (60, 64, 67), 1.0)
    assert len(handler.due(1.01)) == 1
    _play(handler, (72,), 1.5)  # an added octave does not change the chord: no new prompt
    assert handler.due(1.51) == []
    for p in (60, 64, 67, 72):
        handler.feed(mido.Message("note_off", note=p), 1.9)
    _play(handler, (60, 64, 67), 2.0)  # the same chord struck again
    [event] = handler.due(2.01)
    assert event.restrike
    _play(handler, (69,), 2.5)  # C E G A: now an A minor 7 / C6 family chord -> re-prompt
    assert len(handler.due(2.51)) == 1


def test_trigger_and_gesture_controllers():
    handler = InputHandler(trigger_cc=80, temperature_cc=1, temperature_range=(0.5, 1.5))
    handler.feed(mido.Message("control_change", control=80, value=127), 1.0)
    handler.feed(mido.Message("control_change", control=1, value=127), 1.0)
    handler.feed(mido.Message("control_change", control=7, value=100), 1.0)  # volume: ignored
    trigger, gesture = handler.due(1.0)
    assert isinstance(trigger, TriggerEvent)
    assert isinstance(gesture, GestureEvent) and gesture.value == pytest.approx(1.5)
    assert handler.stats.ignored["cc7"] == 1


def test_sysex_clock_running_status_and_malformed_bytes_never_break_chords():
    clock = MusicalClock(bpm=100, anchor_time=0.0)
    handler = InputHandler(settle_ms=1.0, clock_follower=MidiClockFollower(clock))
    handler.feed_bytes([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7], 0.5)  # sysex
    handler.feed_bytes([0xFE], 0.5)  # active sensing
    handler.feed_bytes([0x3C, 0x40], 0.5)  # data bytes without a status
    handler.feed_bytes([0x90, 60], 0.5)  # truncated note-on ...
    handler.feed_bytes([0xC0, 3], 0.5)  # ... cut short by a program change
    handler.feed_bytes([0xF8], 0.6)  # MIDI clock: goes to the follower
    handler.feed_bytes(
        [0x90, 60, 90, 64, 90, 0xF8, 67, 90], 1.0
    )  # running status, clock interleaved
    handler.feed_bytes([300, 1], 1.0)  # not a byte at all
    [event] = handler.due(1.01)
    assert str(event.chord) == "C:maj" and event.pitches == (60, 64, 67)
    assert handler.stats.ignored["sysex"] == 1 and handler.stats.ignored["program_change"] == 1
    assert handler.stats.parse_errors == 1 and handler.stats.ignored["stray_data_bytes"] == 2
    assert handler.clock_follower.ticks_seen == 2
