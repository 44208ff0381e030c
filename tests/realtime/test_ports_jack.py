"""Real MIDI ports through JACK: connect by name, timestamps, robustness, reconnect, clear errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import rtmidi

from realtime.midi_input import InputHandler
from realtime.ports import (
    InputPort,
    OutputPort,
    PortNotFound,
    PortWatcher,
    list_ports,
    open_ports,
    release,
)

ROOT = Path(__file__).resolve().parents[2]
API = rtmidi.API_UNIX_JACK


def virtual_out(client: str):
    port = rtmidi.MidiOut(rtapi=API, name=client)
    port.open_virtual_port("out")
    return port


def virtual_in(client: str):
    port = rtmidi.MidiIn(rtapi=API, name=client)
    port.ignore_types(sysex=False, timing=False, active_sense=False)
    port.open_virtual_port("in")
    return port


def wait_for(fn, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.01)
    return fn()


def test_connect_by_name_delivers_bytes_with_event_timestamps(jack):
    keyboard = virtual_out("t_kbd_a")
    try:
        inp = InputPort(
            API, "t_kbd_a", "t_rt_a", "in"
        ).open()  # a unique part of the name is enough
        assert inp.peer == "t_kbd_a:out"
        time.sleep(0.2)
        sent = time.monotonic()
        keyboard.send_message([0x90, 60, 100])
        got = wait_for(inp.drain)
        assert got[0][0] == [0x90, 60, 100]
        assert sent - 0.002 <= got[0][1] <= time.monotonic()  # stamped near its JACK arrival
        inp.close()
    finally:
        release(keyboard)


def test_unexpected_messages_through_a_real_port_are_ignored(jack):
    keyboard = virtual_out("t_kbd_b")
    try:
        inp = InputPort(API, "t_kbd_b:out", "t_rt_b", "in").open()
        handler = InputHandler(settle_ms=1.0)
        time.sleep(0.2)
        for data in (
            [0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],
            [0xFE],
            [0x3C, 0x40],
            [0xF8],
            [0x90, 57, 90],
            [60, 90],
            [64, 90],
        ):  # the last two: running status
            keyboard.send_message(data)
        time.sleep(0.1)
        for data, at in inp.drain():
            handler.feed_bytes(data, at)
        [event] = handler.due(time.monotonic() + 0.01)  # past the settle window
        assert str(event.chord) == "A:min" and event.pitches == (57, 60, 64)
        assert handler.stats.ignored["sysex"] == 1 and handler.stats.ignored["clock"] == 1
        inp.close()
    finally:
        release(keyboard)


def test_ports_that_disappear_and_come_back_are_reconnected(jack):
    keyboard, daw = virtual_out("t_kbd_c"), virtual_in("t_daw_c")
    inp = InputPort(API, "t_kbd_c:out", "t_rt_c_in", "in").open()
    out = OutputPort(API, "t_daw_c:in", "t_rt_c_out", "out").open()
    watcher = PortWatcher(API, [inp, out], interval_s=0.05)
    try:
        release(keyboard)
        release(daw)
        keyboard = daw = None  # gone: a released handle must never be touched again
        assert wait_for(
            lambda: (watcher.poll(time.monotonic()), not inp.connected and not out.connected)[1]
        )
        assert inp.disconnects == 1 and out.disconnects == 1
        keyboard, daw = virtual_out("t_kbd_c"), virtual_in("t_daw_c")  # both come back
        assert wait_for(
            lambda: (watcher.poll(time.monotonic()), inp.connected and out.connected)[1]
        )
        assert inp.reconnects == 1 and out.reconnects == 1
        inp.drain()  # swaps the reopened handle in
        time.sleep(0.2)
        keyboard.send_message([0x90, 62, 90])
        assert wait_for(inp.drain)[0][0] == [0x90, 62, 90]
        out.send([0x90, 70, 80])
        assert wait_for(daw.get_message)[0] == [0x90, 70, 80]
    finally:
        watcher.close()
        inp.close()
        out.close()
        release(keyboard)
        release(daw)


def test_missing_port_error_names_the_available_ports(jack):
    keyboard = virtual_out("t_kbd_d")
    try:
        assert "t_kbd_d:out" in list_ports(API)["inputs"]
        with pytest.raises(PortNotFound, match=r"Available inputs: \[.*t_kbd_d:out"):
            open_ports("jack", "no_such_keyboard", "virtual")
    finally:
        release(keyboard)


def test_cli_lists_ports_and_exits_with_a_clear_message_on_a_missing_port(
    jack, tiny_ckpt, tmp_path
):
    keyboard = virtual_out("t_kbd_e")
    try:
        listing = subprocess.run(
            [
                sys.executable,
                "-m",
                "realtime.main",
                "list_ports=true",
                "midi.backend=jack",
                f"hydra.run.dir={tmp_path}/a",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert listing.returncode == 0 and "t_kbd_e:out" in listing.stdout
        missing = subprocess.run(
            [
                sys.executable,
                "-m",
                "realtime.main",
                f"ckpt_path={tiny_ckpt}",
                "midi.in=no_such_keyboard",
                "midi.backend=jack",
                f"hydra.run.dir={tmp_path}/b",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert missing.returncode != 0
        assert "no_such_keyboard" in missing.stderr and "t_kbd_e:out" in missing.stderr
        assert "list_ports=true" in missing.stderr
    finally:
        release(keyboard)


@pytest.mark.slow
def test_closing_ports_of_many_clients_under_load_does_not_crash(jack):
    """jackaudio/jack2#216: without release()'s settle pause, 150 such cycles under two CPU hogs
    segfault in most runs (bench/jack_port_churn.py measures it); with it, none may."""
    from bench.jack_port_churn import run_churn
    from realtime.ports import JACK_SETTLE_S

    result = run_churn(cycles=60, settle_s=JACK_SETTLE_S, hogs=2, timeout_s=600)
    assert result["returncode"] == 0, result
