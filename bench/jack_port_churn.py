"""How often opening and closing JACK ports in one process crashes it, by settle time, under load.

    python -m bench.jack_port_churn [--settle 0 0.02 0.05] [--runs 3] [--cycles 150] [--hogs 2]

jack2 clients walk their port list in a notification thread while jack_port_unregister erases
from it (jackaudio/jack2#216): back-to-back closes of ports of several clients in one process
segfault now and then, mostly when the machine is busy. One cycle does what the runtime and its
tests do: a keyboard and a DAW port, the runtime's input and output connected to them by name, a
port watcher, then everything closed again through realtime.ports.release(settle_s). Each run is
a fresh process (a crash ends it) while `--hogs` busy processes load the CPUs.
Needs a JACK server (`bash realtime/jack_setup.sh`). Writes bench/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time

from bench.report import write_results


def churn(cycles: int, settle_s: float) -> None:
    """In this process: `cycles` open/connect/watch/close cycles."""
    import rtmidi

    from realtime.ports import InputPort, OutputPort, PortWatcher, release

    api = rtmidi.API_UNIX_JACK
    for _ in range(cycles):
        keyboard = rtmidi.MidiOut(rtapi=api, name="churn_kbd")
        keyboard.open_virtual_port("out")
        daw = rtmidi.MidiIn(rtapi=api, name="churn_daw")
        daw.open_virtual_port("in")
        inp = InputPort(api, "churn_kbd:out", "churn_rt_in", "in").open()
        out = OutputPort(api, "churn_daw:in", "churn_rt_out", "out").open()
        watcher = PortWatcher(api, [inp, out], interval_s=0.0)
        release(keyboard, settle_s)
        release(daw, settle_s)
        watcher.poll(time.monotonic())
        for handle in (*watcher.listers.values(), inp.handle, out.handle):
            release(handle, settle_s)


def _hog(stop) -> None:
    while not stop.is_set():
        pass


def run_churn(cycles: int, settle_s: float, hogs: int, timeout_s: float = 900.0) -> dict:
    """A fresh process churns while `hogs` processes spin; its exit code and duration."""
    stop = mp.Event()
    spinners = [mp.Process(target=_hog, args=(stop,), daemon=True) for _ in range(hogs)]
    for p in spinners:
        p.start()
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.jack_port_churn", "--child", str(cycles), str(settle_s)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    finally:
        stop.set()
        for p in spinners:
            p.join()
    return {
        "returncode": proc.returncode,
        "crashed": proc.returncode < 0 or proc.returncode == 139,
        "seconds": time.monotonic() - start,
        "stderr_tail": proc.stderr.strip().splitlines()[-3:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, nargs="+", default=[0.0, 0.02, 0.05])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=150)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--name", default="jack_port_churn")
    parser.add_argument("--child", nargs=2, metavar=("CYCLES", "SETTLE_S"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        churn(int(args.child[0]), float(args.child[1]))
        return
    from realtime.ports import jack_server_running

    if not jack_server_running():
        sys.exit("no JACK server: start one with `bash realtime/jack_setup.sh`")
    rows = []
    for settle_s in args.settle:
        results = [run_churn(args.cycles, settle_s, args.hogs) for _ in range(args.runs)]
        rows.append({
            "settle_ms": settle_s * 1000,
            "runs": args.runs,
            "cycles_per_run": args.cycles,
            "crashed_runs": sum(r["crashed"] for r in results),
            "mean_run_s": sum(r["seconds"] for r in results) / args.runs,
        })
        print(rows[-1], flush=True)
    write_results(args.name, rows, notes=(
        f"JACK port open/close churn in one process with {args.hogs} CPU hogs; a crashed run is a "
        "segfault in libjack's notification thread (jackaudio/jack2#216). realtime.ports.release "
        "waits settle_ms before each close (default 50 ms)."))


if __name__ == "__main__":
    main()
