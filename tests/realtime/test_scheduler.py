"""The note queue: timing, pairing of note-offs, cancellation, late drops, tempo changes; fallback phrases."""

from __future__ import annotations

import time

import pytest

from realtime.clock import MusicalClock
from realtime.fallback import FallbackPhrases
from realtime.scheduler import NoteScheduler, ScheduledNote


class Recorder:
    def __init__(self):
        self.messages: list[tuple[float, list[int]]] = []

    def __call__(self, data):
        self.messages.append((time.monotonic(), list(data)))

    def notes(self, kind: int) -> list[int]:
        return [m[1] for _, m in self.messages if m[0] & 0xF0 == kind]


def drain(sched: NoteScheduler, until: float) -> None:
    while time.monotonic() < until:
        sched.run_due()
        time.sleep(0.0005)


def make(bpm: float = 600.0):
    clock = MusicalClock(bpm=bpm)  # 0.1 s per beat: short tests
    out = Recorder()
    return clock, out, NoteScheduler(clock, out, late_tolerance_ms=30)


def test_notes_go_out_in_time_and_every_on_gets_its_off():
    clock, out, sched = make()
    b = clock.now_beat()
    sched.add(ScheduledNote(1, 72, 90, b + 1.0, b + 1.5))
    sched.add(ScheduledNote(1, 60, 80, b + 0.5, b + 2.0))
    provisional = sched.add(ScheduledNote(1, 64, 80, b + 0.7))  # no Duration yet
    sched.set_end(provisional, b + 0.9)
    drain(sched, clock.time_at(b + 2.3))
    assert out.notes(0x90) == [60, 64, 72] and sorted(out.notes(0x80)) == [60, 64, 72]
    on_64 = next(t for t, m in out.messages if m[:2] == [0x90, 64])
    off_64 = next(t for t, m in out.messages if m[:2] == [0x80, 64])
    assert off_64 - on_64 == pytest.approx(0.02, abs=0.01)  # 0.2 beats at 600 bpm
    assert all(abs(r.sent - r.scheduled) < 0.01 for r in sched.stats.log)


def test_cancel_keeps_sounding_notes_paired_and_drops_unsent_ones():
    clock, out, sched = make()
    b = clock.now_beat()
    sched.add(ScheduledNote(1, 60, 80, b + 0.1, b + 3.0))  # will be sounding at the cancel
    sched.add(ScheduledNote(1, 62, 80, b + 2.0, b + 2.5))  # still queued
    drain(sched, clock.time_at(b + 0.5))
    assert sched.cancel_unsent(lambda n: n.ctx == 2) == 1
    sched.add(ScheduledNote(2, 67, 80, b + 1.0, b + 1.5))
    drain(sched, clock.time_at(b + 3.3))
    assert out.notes(0x90) == [60, 67] and sorted(out.notes(0x80)) == [60, 67]


def test_late_grid_note_is_dropped_with_its_off_but_an_immediate_note_plays():
    clock, out, sched = make()
    b = clock.now_beat()
    sched.add(ScheduledNote(1, 60, 80, b - 1.0, b + 1.0))  # 100 ms late
    sched.add(ScheduledNote(1, 64, 80, b - 1.0, b + 1.0, start_wall=time.monotonic()))
    drain(sched, clock.time_at(b + 1.3))
    assert out.notes(0x90) == [64] and out.notes(0x80) == [64]
    assert sched.stats.late_dropped == 1


def test_restriking_a_sounding_pitch_closes_it_first():
    clock, out, sched = make()
    b = clock.now_beat()
    sched.add(ScheduledNote(1, 60, 80, b + 0.2, b + 2.0))
    sched.add(ScheduledNote(2, 60, 90, b + 0.6, b + 1.0))
    drain(sched, clock.time_at(b + 2.3))
    kinds = [(m[0] & 0xF0, m[1]) for _, m in out.messages]
    assert kinds == [(0x90, 60), (0x80, 60), (0x90, 60), (0x80, 60)]
    assert sched.stats.restrikes == 1


def test_tempo_change_retimes_queued_notes():
    clock, out, sched = make(bpm=600)
    b = clock.now_beat()
    sched.add(ScheduledNote(1, 60, 80, b + 2.0, b + 2.5))  # due in 0.2 s at 600 bpm
    clock.set_tempo(300)  # twice as slow from now: due in ~0.4 s
    assert sched.retime_if_clock_changed()
    start = time.monotonic()
    drain(sched, start + 0.6)
    on = next(t for t, m in out.messages if m[0] == 0x90)
    assert on - start == pytest.approx(0.4, abs=0.03)


def test_all_notes_off_closes_everything_and_sends_cc123():
    clock, out, sched = make()
    b = clock.now_beat()
    sched.add(ScheduledNote(1, 60, 80, b + 0.1))
    sched.add(ScheduledNote(1, 67, 80, b + 0.1, b + 50))
    sched.add(ScheduledNote(1, 72, 80, b + 20))  # never starts
    drain(sched, clock.time_at(b + 0.3))
    sched.all_notes_off([0, 1])
    assert sorted(out.notes(0x80)) == [60, 67] and 72 not in out.notes(0x90)
    ccs = [m for _, m in out.messages if m[0] & 0xF0 == 0xB0]
    assert [0xB0, 123, 0] in ccs and [0xB1, 123, 0] in ccs
    assert sched.next_due() is None


def test_fallback_phrase_starts_at_once_stays_in_register_and_on_chord_tones():
    phrases = FallbackPhrases(min_pitch=60, max_pitch=84, step_beats=0.5, min_beats=2.0)
    notes, end = phrases.phrase((57, 60, 64), start_beat=9.3)
    assert notes[0].beat == 9.3 and end == 12.0
    assert all(60 <= n.pitch <= 84 and n.pitch % 12 in {9, 0, 4} for n in notes)
    assert all(b.beat > a.beat for a, b in zip(notes, notes[1:]))
    assert all(n.beat % 0.5 == 0 for n in notes[1:])
    second, _ = phrases.phrase((57, 60, 64), start_beat=12.0)
    assert [n.pitch for n in second] != [n.pitch for n in notes[: len(second)]]  # patterns rotate
    with pytest.raises(ValueError, match="unknown"):
        FallbackPhrases(patterns=["nope"])
