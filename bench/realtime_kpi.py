"""Realtime jam KPIs through real MIDI ports: a "keyboard" plays chords, a "DAW" records the answer.

    bash realtime/jack_setup.sh
    python -m bench.realtime_kpi --ckpt <.ckpt> --minutes 2              # KPI run
    python -m bench.realtime_kpi --ckpt <.ckpt> --minutes 10 --tag soak   # soak, 120-200 bpm
    python -m bench.realtime_kpi --ckpt <.ckpt> --midi my_chords.mid      # your own progression

Three processes besides the runtime (`python -m realtime.main`, the real CLI): the keyboard
plays a MIDI file (chords + MIDI clock, tempo map honoured) into its own port, the runtime
connects to it by name, and the DAW records the runtime's output with timestamps rebuilt from
JACK's event times. Writes bench/results/realtime_kpi_<tag>.{json,md,png}; the raw records
stay in logs/realtime_kpi/<tag>/ (re-analyse them with --analyze-only).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.realtime_kpi_devices import daw_main, keyboard_main, tempo_plan, write_progression
from bench.realtime_kpi_metrics import compute_kpis, write_reports

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _family_pids(pid: int) -> list[int]:
    pids = [pid]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(p.name))
            except (OSError, IndexError, ValueError):
                continue  # a process that ended while we looked
    return pids


def run_kpi(
    ckpt: str,
    out_dir: Path,
    minutes: float,
    bpms: list[float],
    tag: str,
    midi: str | None = None,
    overrides: list[str] = (),
    clock: bool = True,
    noise: bool = True,
    startup_timeout_s: float = 240,
    nice: int = 0,
    bars_per_segment: int = 16,
    work_dir: Path | None = None,
    keyboard_rt: int = 4,
) -> dict:
    """Run once; reports go to out_dir, the raw records (MIDI file, keyboard / DAW / runtime logs)
    to work_dir (default logs/realtime_kpi/<tag>, which git ignores)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir) if work_dir else ROOT / "logs" / "realtime_kpi" / tag
    work.mkdir(parents=True, exist_ok=True)
    midi_path = (
        Path(midi)
        if midi
        else write_progression(
            work / "progression.mid", tempo_plan(minutes, bpms, bars_per_segment)
        )
    )
    ctx = mp.get_context("spawn")
    kb_ready, daw_ready, go, stop = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
    kb_port, daw_port = f"kpi_keyboard_{tag}:out", f"kpi_daw_{tag}:in"
    keyboard = ctx.Process(
        target=keyboard_main,
        args=(
            str(midi_path),
            kb_port,
            kb_ready,
            go,
            str(work / "keyboard.json"),
            clock,
            noise,
            keyboard_rt,
        ),
    )
    daw = ctx.Process(target=daw_main, args=(daw_port, daw_ready, stop, str(work / "daw.json")))
    keyboard.start()
    daw.start()
    if not (kb_ready.wait(60) and daw_ready.wait(60)):
        raise RuntimeError(
            "keyboard/DAW ports did not come up; is a JACK server running? "
            "(bash realtime/jack_setup.sh)"
        )
    log_path, ready_file = work / "runtime_log.json", work / "runtime.ready"
    ready_file.unlink(missing_ok=True)
    cmd = ([] if not nice else ["nice", "-n", str(nice)]) + [
        sys.executable,
        "-m",
        "realtime.main",
        f"ckpt_path={ckpt}",
        f"midi.in={kb_port}",
        f"midi.out={daw_port}",
        "midi.backend=jack",
        f"log_path={log_path}",
        f"ready_file={ready_file}",
        f"hydra.run.dir={work / 'runtime'}",
        *overrides,
    ]
    jack_log = Path(os.environ.get("JACK_LOG", "/tmp/jackd.log"))
    jack_log_span = [None, None]  # byte offsets of JACK's log while the keyboard plays
    runtime_out = open(work / "runtime.stdout", "w")
    runtime = subprocess.Popen(cmd, cwd=ROOT, stdout=runtime_out, stderr=subprocess.STDOUT)
    cpu_samples, crashed = [], None
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not ready_file.exists():
            if runtime.poll() is not None:
                raise RuntimeError(
                    f"runtime exited with {runtime.returncode} before READY; see "
                    f"{work / 'runtime.stdout'}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"runtime not ready after {startup_timeout_s}s")
            time.sleep(0.1)
        if jack_log.exists():
            jack_log_span[0] = jack_log.stat().st_size
        go.set()
        last = {}
        while keyboard.is_alive():
            keyboard.join(1.0)
            if runtime.poll() is not None:
                crashed = runtime.returncode
                break
            now, usage = time.monotonic(), {}
            for pid in _family_pids(runtime.pid):
                try:
                    usage[pid] = _cpu_seconds(pid)
                except OSError:
                    continue
            if last:
                dt = now - last["t"]
                cpu_samples.append(
                    {pid: 100 * (c - last["cpu"].get(pid, c)) / dt for pid, c in usage.items()}
                )
            last = {"t": now, "cpu": usage}
        if jack_log.exists():
            jack_log_span[1] = jack_log.stat().st_size
        time.sleep(1.0)  # let the last chord ring into the record
    finally:
        if runtime.poll() is None:
            runtime.send_signal(signal.SIGINT)
            try:
                runtime.wait(60)
            except subprocess.TimeoutExpired:
                runtime.kill()
        runtime_out.close()
        time.sleep(0.5)
        stop.set()
        daw.join(30)
        keyboard.join(5)
        for proc in (keyboard, daw):
            if proc.is_alive():
                proc.terminate()
    xruns = None
    if None not in jack_log_span:  # JACK's account of clients that missed a cycle while playing
        with open(jack_log, "rb") as f:
            f.seek(jack_log_span[0])
            text = f.read(jack_log_span[1] - jack_log_span[0]).decode(errors="replace")
        xruns = sum(1 for line in text.splitlines() if "XRun" in line and "client" in line)
    run = {
        "jack_xruns": xruns,
        "keyboard_rt": keyboard_rt,
        "tag": tag,
        "minutes": minutes,
        "bpms": bpms,
        "midi": str(midi_path),
        "ckpt": str(ckpt),
        "overrides": list(overrides),
        "loadavg_after": os.getloadavg(),
        "nice": nice,
    }
    (work / "harness.json").write_text(
        json.dumps(
            {
                "exit_code": runtime.returncode if crashed is None else crashed,
                "cpu_samples": cpu_samples,
                "run": run,
            }
        )
    )
    return analyze(work, out_dir, tag)


def analyze(work: Path, out_dir: Path, tag: str) -> dict:
    """KPIs and reports from the raw records of a run."""
    harness = json.loads((work / "harness.json").read_text())
    log_path = work / "runtime_log.json"
    records = {
        "keyboard": json.loads((work / "keyboard.json").read_text()),
        "daw": json.loads((work / "daw.json").read_text()),
        "runtime": json.loads(log_path.read_text()) if log_path.exists() else {},
        "exit_code": harness["exit_code"],
        "cpu_samples": harness["cpu_samples"],
    }
    kpis = compute_kpis(records)
    kpis["run"] = harness["run"]
    kpis["jack_xruns"] = harness["run"].get("jack_xruns")
    write_reports(kpis, records, out_dir, tag)
    return kpis


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", help="platform checkpoint (train.py / music transformer merge)")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument(
        "--bpm",
        type=float,
        nargs="+",
        default=None,
        help="tempo segments (16 bars each, cycled); default 120 140 160 180 200",
    )
    parser.add_argument(
        "--midi", default=None, help="play this MIDI file instead of the built-in progression"
    )
    parser.add_argument("--tag", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--no-clock", action="store_true", help="do not send MIDI clock")
    parser.add_argument("--no-noise", action="store_true", help="do not mix in sysex / stray bytes")
    parser.add_argument("--nice", type=int, default=0, help="run the runtime under nice -n N")
    parser.add_argument(
        "--keyboard-rt",
        type=int,
        default=4,
        help="SCHED_FIFO priority of the keyboard process (0: normal scheduling)",
    )
    parser.add_argument(
        "--analyze-only",
        default=None,
        metavar="RECORDS_DIR",
        help="recompute the reports from a run's raw records (logs/realtime_kpi/<tag>)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides for realtime.main, e.g. realtime/backend=onnx"
    )
    args = parser.parse_args(argv)
    if not args.ckpt and not args.analyze_only:
        parser.error("--ckpt is required (a checkpoint trained with train.py)")
    bpms = args.bpm or [120, 140, 160, 180, 200]
    tag = args.tag or f"{args.minutes:g}min"
    if args.analyze_only:
        kpis = analyze(Path(args.analyze_only), Path(args.out), tag)
    else:
        kpis = run_kpi(
            args.ckpt,
            Path(args.out),
            args.minutes,
            bpms,
            tag,
            args.midi,
            args.overrides,
            clock=not args.no_clock,
            noise=not args.no_noise,
            nice=args.nice,
            keyboard_rt=args.keyboard_rt,
        )
    print((Path(args.out) / f"realtime_kpi_{tag}.md").read_text())
    sys.exit(0 if kpis["crash_free"] else 1)


if __name__ == "__main__":
    main()
