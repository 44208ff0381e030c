"""The runtime's side of the generation worker: start it, wait until the model is warm, exchange
messages. Deliberately light (no torch import): the timing process never loads the model."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from typing import Any

log = logging.getLogger(__name__)


def _worker_entry(conn, cfg: dict) -> None:
    from realtime.generation_worker import worker_main  # imported in the child only

    worker_main(conn, cfg)


class WorkerHandle:
    """The runtime's side: start the process, wait until the model is warm, exchange messages."""

    def __init__(self, cfg: dict, start_timeout_s: float = 120.0):
        self.cfg, self.start_timeout_s = cfg, start_timeout_s
        self.proc = None
        self.conn = None
        self.info: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}

    def start(self) -> dict:
        context = mp.get_context("spawn")  # no fork: the runtime has MIDI threads and torch state
        self.conn, child = context.Pipe()
        self.proc = context.Process(
            target=_worker_entry, args=(child, self.cfg), daemon=True, name="jam-generation-worker"
        )
        self.proc.start()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.conn.poll(0.1):
                kind, payload = self.conn.recv()
                if kind == "ready":
                    self.info = payload
                    return payload
                raise RuntimeError(f"generation worker failed to start:\n{payload}")
            if not self.proc.is_alive():
                raise RuntimeError(
                    f"generation worker exited with code {self.proc.exitcode} while loading "
                    f"{self.cfg.get('ckpt_path')}"
                )
        raise TimeoutError(f"generation worker not ready after {self.start_timeout_s}s")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def send(self, *msg) -> bool:
        try:
            self.conn.send(msg)
            return True
        except (BrokenPipeError, OSError) as err:
            log.error("generation worker unreachable (%s)", err)
            return False

    def poll(self) -> list:
        out = []
        try:
            while self.conn.poll(0):
                out.append(self.conn.recv())
        except (EOFError, OSError) as err:
            log.error("generation worker pipe closed (%s)", err)
        return out

    def stop(self, timeout_s: float = 5.0) -> dict:
        if self.proc is None:
            return self.stats
        if self.alive and self.send("stop"):
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.alive:
                for msg in self.poll():
                    if msg[0] == "stats":
                        self.stats = msg[1]
                if self.stats:
                    break
                time.sleep(0.01)
        self.proc.join(timeout_s)
        if self.proc.is_alive():
            log.warning("generation worker did not stop in %.1fs: terminating it", timeout_s)
            self.proc.terminate()
            self.proc.join(timeout_s)
        return self.stats
