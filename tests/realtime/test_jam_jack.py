"""End to end through real JACK ports: keyboard process -> `python -m realtime.main` -> DAW process.

Asserts correctness, not speed (speed is bench/realtime_kpi.py's job): every chord is answered,
every note sent arrives, note-on/off pairs close, no crash, all-notes-off at shutdown, and the
keyboard's sysex / program changes / stray bytes / MIDI clock are absorbed.
"""

from __future__ import annotations

import pytest

from bench.realtime_kpi import run_kpi


def test_a_20_second_jam_through_jack(jack, tiny_ckpt, tmp_path):
    # ~21 s: 6 bars at 150 bpm, then 190 bpm (a tempo change mid-stream, followed by MIDI clock)
    kpis = run_kpi(
        str(tiny_ckpt),
        tmp_path,
        minutes=0.35,
        bpms=[150, 190],
        tag="test",
        bars_per_segment=6,
        work_dir=tmp_path / "records",
    )
    assert kpis["crash_free"], kpis["exit_code"]
    assert kpis["chords_played"] >= 12
    assert kpis["chords_without_answer"] == 0 and kpis["ttfn_ms"]["n"] == kpis["prompts"]
    # the worker reports each prompt's prefill: a continuing REMI context always feeds the chord
    assert kpis["prefill_tokens"]["n"] == kpis["prompts"] and kpis["prefill_tokens"]["max"] > 0
    assert (
        kpis["ttfn_with_prefill_ms"]["n"] + kpis["ttfn_prompt_cache_hit_ms"]["n"] == kpis["prompts"]
    )
    assert kpis["notes_out"] >= kpis["chords_played"]
    assert kpis["notes_received"] == kpis["notes_out"] and kpis["unmatched_sends"] == 0
    assert kpis["unclosed_notes"] == 0 and kpis["all_notes_off_at_end"]
    ignored = kpis["input_ignored"]
    assert ignored.get("sysex", 0) > 0 and ignored.get("program_change", 0) > 0
    assert ignored.get("stray_data_bytes", 0) > 0 and kpis["midi_clock_ticks"] > 500
    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"realtime_kpi_test.{suffix}").stat().st_size > 0


@pytest.mark.slow
def test_a_model_slower_than_realtime_gets_covered_by_fallback_through_jack(
    jack, tiny_ckpt, tmp_path
):
    kpis = run_kpi(
        str(tiny_ckpt),
        tmp_path,
        minutes=0.2,
        bpms=[160],
        tag="slow",
        overrides=["generation.step_delay_ms=150"],
        work_dir=tmp_path / "records",
    )
    assert kpis["crash_free"]
    assert kpis["underruns"] > 0 and kpis["fallback_notes"] > 0
    assert kpis["notes_received"] == kpis["notes_out"] and kpis["unclosed_notes"] == 0
