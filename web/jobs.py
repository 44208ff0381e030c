"""Jobs of the web studio: run off the event loop in a bounded thread pool, stream their
events, keep their outputs on disk and delete them after a TTL.

A job lives in `<root>/<job id>/` (job.json + whatever its run wrote: result.mid, roll.json,
...). Ids are uuid4 hex strings and are checked against `JOB_ID` before any path is built, so
no request can name a file outside the root. Jobs of an earlier server process are found on
disk (GET works after a restart) and the cleaner removes every job dir older than `ttl_s`
(counted from when it finished), on a schedule of `cleanup_interval_s`.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from web.schemas import JOB_ID

log = logging.getLogger(__name__)
FINISHED = ("succeeded", "failed")


class JobError(Exception):
    """A request about jobs that cannot be served; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Job:
    def __init__(self, job_id: str, directory: Path, request: dict | None = None, status: str = "preparing",
                 created: float | None = None, finished: float | None = None, error: str | None = None,
                 summary: dict | None = None):
        self.id, self.dir, self.request = job_id, directory, request or {}
        self.status, self.error, self.summary = status, error, summary or {}
        self.created = created if created is not None else time.time()
        self.finished = finished
        self.events: list[dict] = []
        self._lock = threading.Lock()

    def emit(self, event: dict) -> None:
        with self._lock:
            self.events.append(event)

    def events_since(self, index: int) -> list[dict]:
        with self._lock:
            return self.events[index:]

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    def info(self) -> dict[str, Any]:
        return {"job_id": self.id, "status": self.status, "error": self.error, "created": self.created,
                "finished": self.finished, "request": self.request, "summary": self.summary}

    def save(self) -> None:
        (self.dir / "job.json").write_text(json.dumps(self.info(), indent=1))

    @classmethod
    def load(cls, directory: Path) -> Job:
        info = json.loads((directory / "job.json").read_text())
        status = info["status"] if info["status"] in FINISHED else "failed"  # died with its server
        error = info.get("error") or (None if status == info["status"] else "the server stopped during the job")
        job = cls(directory.name, directory, info.get("request"), status, info.get("created"),
                  info.get("finished") or info.get("created"), error, info.get("summary"))
        job.events.append(job.final_event())
        return job

    def final_event(self) -> dict:
        if self.status == "succeeded":
            return {"type": "done", "status": self.status, "summary": self.summary}
        return {"type": "error", "status": self.status, "message": self.error}


class JobManager:
    """root: where job dirs go; max_concurrent: jobs running at once (worker threads);
    max_queued: jobs waiting beyond those (more -> 429); ttl_s: age after which a finished
    job's outputs are deleted; cleanup_interval_s: how often the cleaner looks."""

    def __init__(self, root: str | Path, max_concurrent: int = 1, max_queued: int = 8, ttl_s: float = 86400.0,
                 cleanup_interval_s: float = 600.0):
        if max_concurrent < 1:
            raise ValueError(f"jobs.max_concurrent must be >= 1, got {max_concurrent}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_concurrent, self.max_queued = max_concurrent, max_queued
        self.ttl_s, self.cleanup_interval_s = float(ttl_s), float(cleanup_interval_s)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="web-job")
        self._stop = threading.Event()
        self._cleaner: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduled cleaner (idempotent); it runs once right away."""
        if self._cleaner is None or not self._cleaner.is_alive():
            self._stop.clear()
            self._cleaner = threading.Thread(target=self._clean_loop, name="web-job-cleaner", daemon=True)
            self._cleaner.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._cleaner is not None:
            self._cleaner.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _clean_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.cleanup()
            except OSError as err:  # a full or read-only disk must not kill the server
                log.error("job cleanup under %s failed: %r", self.root, err)
            self._stop.wait(self.cleanup_interval_s)

    # ---- jobs --------------------------------------------------------------------------------
    def create(self, request: dict) -> Job:
        """A new job dir (status `preparing`); `start` runs it, `discard` drops it."""
        with self._lock:
            waiting = sum(j.status in ("queued", "running") for j in self._jobs.values())
            if waiting >= self.max_concurrent + self.max_queued:
                raise JobError(429, f"{waiting} jobs are queued or running (limit "
                                    f"{self.max_concurrent + self.max_queued}); try again when one finishes")
            job_id = uuid.uuid4().hex
            job = Job(job_id, self.root / job_id, request)
            job.dir.mkdir(parents=True)
            self._jobs[job_id] = job
        return job

    def discard(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.dir, ignore_errors=True)

    def start_job(self, job: Job, run: Callable[[Job], dict]) -> None:
        """Queue run(job) -> summary dict on the worker pool."""
        job.status = "queued"
        job.save()
        job.emit({"type": "status", "status": "queued"})
        self._pool.submit(self._run, job, run)

    def _run(self, job: Job, run: Callable[[Job], dict]) -> None:
        job.status = "running"
        job.emit({"type": "status", "status": "running"})
        try:
            job.summary = run(job) or {}
            job.status = "succeeded"
        except Exception as err:  # reported to the client and logged with the traceback
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", f"{type(err).__name__}: {err}"
        job.finished = time.time()
        job.save()
        job.emit(job.final_event())

    def get(self, job_id: str) -> Job:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise JobError(400, f"invalid job id {job_id[:64]!r}: job ids are 32 lowercase hex characters")
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        directory = self.root / job_id
        if (directory / "job.json").is_file():  # a job of an earlier server process
            job = Job.load(directory)
            with self._lock:
                self._jobs.setdefault(job_id, job)
            return job
        raise JobError(404, f"no job {job_id} (finished jobs are deleted after {self.ttl_s:.0f} s)")

    def file(self, job_id: str, name: str) -> Path:
        """A finished job's output file (409 while it runs, 404 when it has none)."""
        job = self.get(job_id)
        if not job.done:
            raise JobError(409, f"job {job_id} is {job.status}: wait for its 'done' event")
        if job.status == "failed":
            raise JobError(409, f"job {job_id} failed ({job.error}); it has no outputs")
        path = job.dir / name
        if not path.is_file():
            raise JobError(404, f"job {job_id} has no {name}")
        return path

    def cleanup(self, now: float | None = None) -> list[str]:
        """Delete finished jobs older than ttl_s (and stray dirs of jobs that never started)."""
        now = time.time() if now is None else now
        removed = []
        for directory in self.root.iterdir():
            if not directory.is_dir() or not JOB_ID.match(directory.name):
                continue
            with self._lock:
                job = self._jobs.get(directory.name)
            if job is not None and not job.done:
                continue
            stamp = job.finished if job is not None else _stamp(directory)
            if now - stamp > self.ttl_s:
                shutil.rmtree(directory, ignore_errors=True)
                with self._lock:
                    self._jobs.pop(directory.name, None)
                removed.append(directory.name)
        if removed:
            log.info("deleted %d job(s) older than %.0f s: %s", len(removed), self.ttl_s, removed)
        return removed


def _stamp(directory: Path) -> float:
    try:
        info = json.loads((directory / "job.json").read_text())
        return float(info.get("finished") or info.get("created"))
    except (OSError, ValueError, TypeError):
        return directory.stat().st_mtime
