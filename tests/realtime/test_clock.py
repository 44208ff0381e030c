"""Musical clock: beat <-> wall time, tempo changes without jumps, MIDI clock following."""

from __future__ import annotations

import pytest

from realtime.clock import MidiClockFollower, MusicalClock


def test_beats_and_wall_time_round_trip():
    clock = MusicalClock(bpm=120, anchor_time=100.0)
    assert clock.beat_at(101.0) == pytest.approx(2.0)
    assert clock.time_at(6.0) == pytest.approx(103.0)
    assert clock.bar_beat_tick(9.5, ticks_per_beat=480) == (2, 1, 240)
    assert clock.quantize(4.13, 0.25) == pytest.approx(4.25)


def test_tempo_change_mid_stream_keeps_the_beat_continuous():
    clock = MusicalClock(bpm=120, anchor_time=0.0)
    version = clock.version
    clock.set_tempo(180, at=2.0)  # beat 4 at t=2
    assert clock.version == version + 1
    assert clock.beat_at(2.0) == pytest.approx(4.0)
    assert clock.beat_at(3.0) == pytest.approx(7.0)  # 3 beats per second after the change
    assert clock.time_at(10.0) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="tempo must be > 0"):
        clock.set_tempo(0)


def _ticks(follower: MidiClockFollower, start: float, bpm: float, n: int) -> float:
    dt = 60.0 / bpm / 24
    for i in range(n):
        follower.tick(start + i * dt)
    return start + n * dt


def test_midi_clock_sets_tempo_and_phase_then_follows_a_tempo_change():
    clock = MusicalClock(bpm=100, anchor_time=0.0)
    follower = MidiClockFollower(clock)
    follower.start(at=10.0)
    t = _ticks(follower, 10.0, 150, 24 * 4)  # four beats at 150 bpm
    assert clock.bpm == pytest.approx(150, rel=0.01)
    assert clock.beat_at(t) == pytest.approx(4.0, abs=0.02)
    t = _ticks(follower, t, 90, 24 * 4)  # the tempo drops mid-stream
    assert clock.bpm == pytest.approx(90, rel=0.01)
    assert clock.beat_at(t) == pytest.approx(8.0, abs=0.02)


def test_midi_clock_without_start_keeps_our_phase_and_ignores_ticks_when_stopped():
    clock = MusicalClock(bpm=120, anchor_time=0.0)
    follower = MidiClockFollower(clock)
    _ticks(follower, 1.0, 120, 48)
    assert clock.beat_at(1.0) == pytest.approx(2.0, abs=0.02)
    follower.stop()
    before = clock.version
    _ticks(follower, 3.0, 60, 48)
    assert clock.version == before and clock.bpm == pytest.approx(120, rel=0.01)


def test_one_late_tick_does_not_drag_tempo_or_phase():
    clock = MusicalClock(bpm=100, anchor_time=0.0)
    follower = MidiClockFollower(clock)
    follower.start(at=0.0)
    dt = 60.0 / 120 / 24
    for i in range(24 * 8):  # 8 beats at 120 bpm; tick 100 arrives 15 ms late (a preempted sender)
        follower.tick(i * dt + (0.015 if i == 100 else 0.0))
    assert clock.bpm == pytest.approx(120, rel=0.005)
    assert clock.beat_at(24 * 8 * dt) == pytest.approx(8.0, abs=0.01)


def test_a_lost_tick_does_not_shift_the_bar_lines():
    clock = MusicalClock(bpm=160, anchor_time=0.0)
    follower = MidiClockFollower(clock)
    follower.start(at=0.0)
    dt = 60.0 / 160 / 24
    for i in range(24 * 8):
        if i != 120:  # dropped on the way (a JACK xrun)
            follower.tick(i * dt)
    assert follower.ticks_lost == 1
    assert clock.beat_at(24 * 8 * dt) == pytest.approx(8.0, abs=0.01)


def test_halving_the_tempo_is_not_mistaken_for_lost_ticks():
    clock = MusicalClock(bpm=140, anchor_time=0.0)
    follower = MidiClockFollower(clock)
    follower.start(at=0.0)
    t = _ticks(follower, 0.0, 140, 24 * 4)
    t = _ticks(follower, t, 70, 24 * 4)
    assert follower.ticks_lost == 0
    assert clock.bpm == pytest.approx(70, rel=0.01)
    assert clock.beat_at(t) == pytest.approx(8.0, abs=0.02)


def test_ticks_delayed_into_a_burst_are_not_counted_as_lost():
    clock = MusicalClock(bpm=120, anchor_time=0.0)
    follower = MidiClockFollower(clock)
    follower.start(at=0.0)
    dt = 60.0 / 120 / 24
    for i in range(24 * 8):
        late = dt if i == 100 else 0.0  # tick 100 held back a whole interval, then sent with 101
        follower.tick(i * dt + late)
    assert follower.ticks_lost == 0
    assert clock.beat_at(24 * 8 * dt) == pytest.approx(8.0, abs=0.01)
