"""MIDI ports: backend selection, virtual ports, connect by name, reconnect when a port comes back.

Ports are python-rtmidi objects (the library under mido's rtmidi backend) used by polling,
never with a Python callback: mido's rtmidi backend always installs one, and under JACK it runs
inside the JACK process thread, where waiting for the GIL causes xruns. Incoming bytes are
parsed by mido's Parser (realtime.midi_input). Backends: `jack` (Linux without an ALSA
sequencer, e.g. containers; start a server with realtime/jack_setup.sh), `alsa`, or `auto`
(JACK when a server answers, else ALSA); mido-style names such as
`mido.backends.rtmidi/UNIX_JACK` are accepted too.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque

import rtmidi

log = logging.getLogger(__name__)

_APIS = {
    "jack": rtmidi.API_UNIX_JACK,
    "unix_jack": rtmidi.API_UNIX_JACK,
    "alsa": rtmidi.API_LINUX_ALSA,
    "linux_alsa": rtmidi.API_LINUX_ALSA,
}


# jack2 clients walk their own port list in a notification thread (a latency callback after
# every graph change) while jack_port_unregister erases from that list in the calling thread;
# closing ports of several clients of one process back to back can therefore segfault
# (jackaudio/jack2#216, #340; python-rtmidi bundles jack2's libjack). bench/jack_port_churn.py:
# 150 cycles of the runtime's ports opened and closed under two CPU hogs crashed 2 of 3 runs
# without a pause, 0 of 3 with 20 ms or 50 ms before each close, which lets the notifications
# of the previous change finish. Every close in this package goes through release().
JACK_SETTLE_S = 0.05


class PortNotFound(LookupError):
    pass


def release(handle, settle_s: float = JACK_SETTLE_S) -> None:
    """Close an rtmidi port and its client after JACK's pending notifications have settled.

    None is ignored. Release a handle once: rtmidi crashes on any use of a deleted handle."""
    if handle is None:
        return
    time.sleep(settle_s)
    handle.close_port()
    handle.delete()


def jack_server_running() -> bool:
    """True when a JACK client can be opened (no server is auto-started)."""
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    try:
        probe = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name="musicplat_probe")
        probe.get_port_count()  # opens the JACK client: raises or returns 0 ports without a server
        ok = probe.get_current_api() == rtmidi.API_UNIX_JACK and _jack_client_ok(probe)
        release(probe)
        return ok
    except (rtmidi.SystemError, rtmidi.RtMidiError) as err:
        log.debug("no JACK server: %s", err)
        return False


def _jack_client_ok(probe) -> bool:
    # rtmidi's JACK backend reports failure only through its error callback: open a virtual
    # port, which fails without a server
    errors = []
    probe.set_error_callback(lambda kind, msg, data: errors.append(msg))
    try:
        probe.open_virtual_port("probe")
    except (rtmidi.SystemError, rtmidi.RtMidiError) as err:
        errors.append(str(err))
    return not errors


def resolve_api(backend: str) -> int:
    """Config value -> rtmidi API id."""
    name = backend.rsplit("/", 1)[-1].lower() if "/" in backend else backend.lower()
    if name == "auto":
        if jack_server_running():
            return rtmidi.API_UNIX_JACK
        if os.path.exists("/dev/snd/seq"):
            return rtmidi.API_LINUX_ALSA
        raise RuntimeError(
            "midi.backend=auto: no JACK server answers and there is no ALSA sequencer "
            "(/dev/snd/seq). Start JACK with `bash realtime/jack_setup.sh` "
            "(or install a sound card driver and use midi.backend=alsa)"
        )
    if name not in _APIS:
        raise ValueError(
            f"midi.backend={backend!r}: choose auto, jack or alsa "
            "(or a mido name like mido.backends.rtmidi/UNIX_JACK)"
        )
    if _APIS[name] not in rtmidi.get_compiled_api():
        raise RuntimeError(f"python-rtmidi was built without the {name} API")
    return _APIS[name]


def list_ports(api: int) -> dict[str, list[str]]:
    """{'inputs': ports we can read from, 'outputs': ports we can write to}."""
    midi_in, midi_out = (
        rtmidi.MidiIn(rtapi=api, name="musicplat_list"),
        rtmidi.MidiOut(rtapi=api, name="musicplat_list"),
    )
    try:
        return {"inputs": midi_in.get_ports(), "outputs": midi_out.get_ports()}
    finally:
        release(midi_in)
        release(midi_out)


def match_port(spec: str, names: list[str], direction: str) -> int:
    """Index of the port named `spec`: exact, else one case-insensitive substring match."""
    if spec in names:
        return names.index(spec)
    hits = [i for i, n in enumerate(names) if spec.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0]
    what = "matches several" if hits else "matches no"
    raise PortNotFound(
        f"midi.{'in' if direction == 'input' else 'out'}={spec!r} {what} MIDI {direction} port. "
        f"Available {direction}s: {names or '(none)'}. Pass one of them (a unique part of the name is "
        f"enough), or 'virtual' to create a port other programs connect to; list ports with "
        f"`python -m realtime.main list_ports=true`."
    )


class DeltaTimestamps:
    """rtmidi's per-message deltas (JACK event times) -> wall times (time.monotonic).

    The running sum of deltas is anchored to the wall clock by the earliest (poll time - sum)
    within a sliding window: a late poll never makes a message look late, and slow drift
    between the two clocks is followed.
    """

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self.reset()

    def reset(self) -> None:
        self.total = 0.0
        self.anchors: deque[tuple[float, float]] = (
            deque()
        )  # (poll time, candidate), candidates rising

    def stamp(self, delta: float, polled: float) -> float:
        self.total += delta
        candidate = polled - self.total
        while self.anchors and self.anchors[-1][1] >= candidate:
            self.anchors.pop()
        self.anchors.append((polled, candidate))
        while self.anchors[0][0] < polled - self.window_s:
            self.anchors.popleft()
        return self.anchors[0][1] + self.total


class _Port:
    """One end of the runtime: a virtual port, or a port connected to a named peer that is
    reopened when the peer disappears and comes back (see PortWatcher)."""

    direction = "input"

    def __init__(self, api: int, spec: str, client_name: str, port_name: str):
        self.api, self.spec, self.client_name, self.port_name = api, spec, client_name, port_name
        self.virtual = spec == "virtual"
        self.peer: str | None = None
        self.handle = None
        self._next = None  # a reopened handle prepared by the watcher, swapped in at the next use
        self._retired: list = []  # handles replaced by a reconnect, closed with the port
        self.reconnects = 0
        self.disconnects = 0
        self.connected = False

    def _new_handle(self):
        raise NotImplementedError

    def open(self) -> _Port:
        handle = self._new_handle()
        try:
            if self.virtual:
                handle.open_virtual_port(self.port_name)
                self.peer = None
            else:
                every = handle.get_ports()
                others = [n for n in every if not n.startswith(f"{self.client_name}:")]
                self.peer = (
                    self.spec
                    if self.spec in every
                    else others[match_port(self.spec, others, self.direction)]
                )
                handle.open_port(every.index(self.peer), self.port_name)
        except BaseException:
            release(handle)
            raise
        self.handle, self.connected = handle, True
        return self

    def watch_once(self, lister) -> None:
        """Called from the watcher: notice the peer leaving; reopen when it is back."""
        if self.virtual or self.peer is None:
            return
        present = self.peer in lister.get_ports()
        if self.connected and not present:
            self.connected = False
            self.disconnects += 1
            log.warning(
                "MIDI %s %s disappeared; waiting for it to come back", self.direction, self.peer
            )
        elif not self.connected and present:
            handle = self._new_handle()
            try:
                handle.open_port(handle.get_ports().index(self.peer), self.port_name)
            except Exception:
                self._retired.append(handle)  # closed with the port: release() would stall the loop
                raise
            self._next = handle
            self.connected = True
            self.reconnects += 1
            log.warning("MIDI %s %s is back: reconnected", self.direction, self.peer)

    def swap_if_reconnected(self) -> None:
        """Put a reopened handle in place (the timing loop, at its next use of the port).

        The old handle is closed at close(), not here: release() waits, the timing loop must not."""
        if self._next is None:
            return
        self._retired.append(self.handle)
        self.handle, self._next = self._next, None

    def close(self) -> None:
        for handle in [self.handle, self._next, *self._retired]:
            if handle is not None:
                release(handle)
        self.handle = self._next = None
        self._retired = []


class InputPort(_Port):
    direction = "input"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stamps = DeltaTimestamps()

    def _new_handle(self):
        handle = rtmidi.MidiIn(rtapi=self.api, name=self.client_name, queue_size_limit=4096)
        handle.ignore_types(sysex=False, timing=False, active_sense=True)  # we see (and skip) them
        return handle

    def drain(self) -> list[tuple[list[int], float]]:
        """Every message waiting in the port's queue with its arrival time (non-blocking)."""
        if self._next is not None:
            self.swap_if_reconnected()
            self.stamps.reset()
        out = []
        while True:
            msg = self.handle.get_message()
            if not msg:
                return out
            out.append((msg[0], self.stamps.stamp(msg[1], time.monotonic())))


class OutputPort(_Port):
    direction = "output"

    def _new_handle(self):
        return rtmidi.MidiOut(rtapi=self.api, name=self.client_name)

    def send(self, data: list[int]) -> None:
        if self._next is not None:
            self.swap_if_reconnected()
        self.handle.send_message(data)


class PortWatcher:
    """Checks named peers every `interval_s` with one long-lived lister client per direction.

    Polled from the timing loop rather than run in its own thread: a Python thread at normal
    priority that holds the GIL while other processes preempt it would stall a realtime-priority
    loop (priority inversion). A check lists ports (tens of microseconds); reopening a port only
    happens when a peer came back.
    """

    def __init__(self, api: int, ports: list[_Port], interval_s: float = 0.5):
        self.ports, self.interval_s = [p for p in ports if not p.virtual], interval_s
        self.listers = {
            "input": rtmidi.MidiIn(rtapi=api, name="musicplat_watch_in"),
            "output": rtmidi.MidiOut(rtapi=api, name="musicplat_watch_out"),
        }
        self.next_check = time.monotonic() + interval_s
        self.errors = 0

    def poll(self, now: float) -> None:
        if now < self.next_check or not self.ports:
            return
        self.next_check = now + self.interval_s
        for port in self.ports:
            try:
                port.watch_once(self.listers[port.direction])
            except (rtmidi.SystemError, rtmidi.RtMidiError, ValueError) as err:
                self.errors += 1  # the peer vanished again between listing and opening
                port.connected = False
                log.warning("reconnecting %s failed (%s); will retry", port.peer, err)

    def close(self) -> None:
        for lister in self.listers.values():
            release(lister)


def open_ports(
    backend: str,
    midi_in: str,
    midi_out: str,
    client_name: str = "musicplat_jam",
    wait_s: float = 0.0,
) -> tuple[int, InputPort, OutputPort]:
    """Open the runtime's input and output; waits up to wait_s for named ports to appear."""
    api = resolve_api(backend)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            inp = InputPort(api, midi_in, client_name + "_in", "in").open()
            try:
                out = OutputPort(api, midi_out, client_name + "_out", "out").open()
            except Exception:
                inp.close()
                raise
            return api, inp, out
        except PortNotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
