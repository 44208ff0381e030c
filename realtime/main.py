"""Realtime jam: play chords into a MIDI port, hear a generated line from another, in time.

    bash realtime/jack_setup.sh     # Linux without an ALSA sequencer: a JACK server (idempotent)
    python -m realtime.main list_ports=true
    python -m realtime.main ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt \\
        midi.in=<keyboard port> midi.out=<synth/DAW port> [realtime/backend=onnx] [realtime/role=bass]

`virtual` for midi.in / midi.out creates ports other programs connect to. Ctrl-C (or SIGTERM)
stops cleanly: every sounding note is closed and CC 123 goes out on every channel. The run's
record (every send, prompt, underrun, lead sample) is written to `log_path`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from realtime.ports import PortNotFound, PortWatcher, list_ports, open_ports, resolve_api
from realtime.runtime import JamRuntime, write_summary
from realtime.worker_handle import WorkerHandle

log = logging.getLogger("realtime")


def worker_config(cfg: DictConfig) -> dict:
    gen = OmegaConf.to_container(cfg.generation, resolve=True)
    return {"ckpt_path": str(Path(cfg.ckpt_path).resolve()), **gen}


def set_rt_priority(priority: int, what: str) -> bool:
    """SCHED_FIFO for the calling thread (0 = leave it). Needs root or an rtprio limit."""
    if not priority:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
        return True
    except (PermissionError, OSError) as err:
        log.warning(
            "could not give the %s realtime priority %d (%s); running with normal scheduling",
            what,
            priority,
            err,
        )
        return False


def print_ports(backend: str) -> None:
    api = resolve_api(backend)
    ports = list_ports(api)
    print(f"MIDI inputs (use as midi.in=...):  {ports['inputs'] or '(none)'}")
    print(f"MIDI outputs (use as midi.out=...): {ports['outputs'] or '(none)'}")


def run(cfg: DictConfig) -> dict:
    api, inport, outport = open_ports(
        cfg.midi.backend,
        cfg.midi["in"],
        cfg.midi.out,
        cfg.midi.client_name,
        cfg.midi.wait_for_ports_s,
    )
    worker = WorkerHandle(worker_config(cfg), cfg.generation.start_timeout_s)
    watcher = runtime = None
    realtime_loop = False
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        info = worker.start()
        log.info("model ready: %s", info)
        if cfg.generation.rt_priority:
            worker_priority = int(cfg.generation.rt_priority)
            try:
                os.sched_setscheduler(
                    worker.proc.pid, os.SCHED_FIFO, os.sched_param(worker_priority)
                )
            except (PermissionError, OSError) as err:
                log.warning("worker keeps normal scheduling (%s)", err)
        watcher = PortWatcher(api, [inport, outport], cfg.midi.reconnect_interval_s)
        runtime = JamRuntime(cfg, inport, outport, worker, watcher=watcher)

        def request_stop(signum, frame):
            runtime.stop_requested = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        realtime_loop = set_rt_priority(cfg.loop.rt_priority, "timing loop")
        inport.drain()  # whatever arrived while the model loaded is stale
        names = {
            "in": inport.peer or f"{inport.client_name}:{inport.port_name}",
            "out": outport.peer or f"{outport.client_name}:{outport.port_name}",
        }
        print(
            f"READY in={names['in']} out={names['out']} model={info.get('family')} "
            f"backend={info.get('backend')}",
            flush=True,
        )
        if cfg.ready_file:
            Path(cfg.ready_file).write_text(str(os.getpid()))
        runtime.run(cfg.duration_s)
    finally:
        if runtime is not None:
            runtime.shutdown()
        stats = worker.stop()
        if watcher is not None:
            watcher.close()
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        summary = runtime.summary() if runtime is not None else {}
        summary.update(
            worker=stats,
            worker_info=worker.info,
            wall_s=wall,
            runtime_cpu_s=cpu,
            ports={
                "in": inport.peer or "virtual",
                "out": outport.peer or "virtual",
                "in_reconnects": inport.reconnects,
                "out_reconnects": outport.reconnects,
                "in_disconnects": inport.disconnects,
                "out_disconnects": outport.disconnects,
            },
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        summary["realtime_priority_loop"] = realtime_loop
        inport.close()
        outport.close()
        if cfg.log_path:
            path = write_summary(cfg.log_path, summary)
            log.info("run log: %s", path)
    counts = summary.get("counts", {})
    print(
        f"stopped after {wall:.1f}s: {counts.get('sent_on', 0)} notes, {len(summary.get('prompts', []))} "
        f"prompts, {counts.get('underruns', 0)} underruns; log: {cfg.log_path}",
        flush=True,
    )
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="realtime")
def main(cfg: DictConfig) -> None:
    if cfg.list_ports:
        print_ports(cfg.midi.backend)
        return
    if not Path(cfg.ckpt_path).is_file():
        sys.exit(
            f"ckpt_path={cfg.ckpt_path} not found: pass a platform checkpoint, e.g. "
            "logs/train/runs/<run>/checkpoints/last.ckpt (train one with train.py)"
        )
    try:
        run(cfg)
    except PortNotFound as err:
        sys.exit(str(err))


if __name__ == "__main__":
    main()
