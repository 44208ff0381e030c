"""The studio's HTTP API (FastAPI) and its page.

    POST /jobs                  GenerationRequest as JSON, or multipart: `request` (JSON) + `midi` (file)
    WS   /jobs/{id}/events      status, progress (per level, per step), then done | error
    GET  /jobs/{id}             status, request, summary
    GET  /jobs/{id}/midi        the result as a MIDI file
    GET  /jobs/{id}/roll        notes, Level 0 curves and every level's roll as JSON (web/roll.py)
    GET  /jobs/{id}/png         piano-roll picture (?view=levels: the fractal level stack)
    GET  /models                the served checkpoints and what each accepts
    GET  /                      the page (web/static)

Every error is JSON {"status": <code>, "message": "..."}.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import symusic
import torch
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from datamodules.midi_io import MidiSkip, load_score, save_piano_roll_png
from web.engines import ModelRegistry
from web.fractal_engine import FractalEngine, RequestError
from web.jobs import JobError, JobManager
from web.schemas import GenerationRequest, JobCreated

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DEFAULT_LIMITS = {"max_upload_bytes": 2_000_000, "max_request_bytes": 1_000_000}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


def _validation_message(err: ValidationError | RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
    return "invalid request: " + "; ".join(parts)


def validate_midi(data: bytes, path: Path, filename: str) -> symusic.Score:
    """Write an upload to `path` and read it back; RequestError naming the file and the problem."""
    if not data.startswith(b"MThd"):
        raise RequestError(f"{filename}: not a Standard MIDI File (no 'MThd' header); upload a .mid/.midi file")
    path.write_bytes(data)
    try:
        return load_score(path)
    except MidiSkip as err:
        detail = f" ({err.detail})" if err.detail else ""
        raise RequestError(f"{filename}: MIDI rejected: {err.reason}{detail}") from err


def create_app(registry: ModelRegistry, jobs: JobManager, limits: dict | None = None,
               title: str = "musicplat studio", num_threads: int = 1, poll_s: float = 0.05) -> FastAPI:
    limits = {**DEFAULT_LIMITS, **dict(limits or {})}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        jobs.start()
        yield
        jobs.shutdown()

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.registry, app.state.jobs = registry, jobs

    @app.exception_handler(JobError)
    async def job_error(request, err: JobError):
        return _error(err.status, err.message)

    @app.exception_handler(RequestError)
    async def request_error(request, err: RequestError):
        return _error(422, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(request, err: HTTPException):
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, err: RequestValidationError):
        return _error(422, _validation_message(err))

    async def read_request(request: Request) -> tuple[GenerationRequest, bytes | None, str]:
        ctype = request.headers.get("content-type", "")
        declared = int(request.headers.get("content-length") or 0)
        cap = limits["max_upload_bytes"] + limits["max_request_bytes"]
        if declared > cap:
            raise JobError(413, f"request of {declared} bytes is over the limit ({cap} bytes)")
        upload, filename, text = None, "upload.mid", "{}"
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=2, max_part_size=limits["max_request_bytes"])
            text = form.get("request") or "{}"
            file = form.get("midi")
            if file is not None and not isinstance(file, str):
                filename = Path(file.filename or filename).name
                upload = await file.read(limits["max_upload_bytes"] + 1)
                if len(upload) > limits["max_upload_bytes"]:
                    raise JobError(413, f"{filename}: over the upload limit of {limits['max_upload_bytes']} "
                                        "bytes (limits.max_upload_bytes)")
                if not upload:
                    raise RequestError(f"{filename}: the uploaded file is empty")
        elif ctype.startswith("application/json"):
            text = (await request.body()).decode("utf-8", errors="replace")
        elif declared or ctype:
            raise JobError(415, f"POST /jobs takes application/json or multipart/form-data, not {ctype!r}")
        try:
            return GenerationRequest.model_validate_json(text), upload, filename
        except ValidationError as err:
            raise JobError(422, _validation_message(err)) from None

    @app.post("/jobs", status_code=202, response_model=JobCreated)
    async def create_job(request: Request) -> JobCreated:
        req, data, filename = await read_request(request)
        engine = await run_in_threadpool(registry.engine, req.model)
        source_dir = jobs.file(req.source_job, "result.mid").parent if req.source_job else None
        job = jobs.create(req.model_dump(exclude_none=True) | {"upload": filename if data else None})
        try:
            upload = path = None
            if data is not None:
                path = job.dir / "input.mid"
                upload = validate_midi(data, path, filename)
            plan = await run_in_threadpool(engine.prepare, req, upload, path, source_dir)
        except Exception:
            jobs.discard(job)
            raise
        name = req.model or registry.default

        def run(job) -> dict:
            torch.set_num_threads(num_threads)
            return {"model": name, **engine.execute(plan, job.dir, job.emit)}

        jobs.start_job(job, run)
        return JobCreated(job_id=job.id, status=job.status, events=f"/jobs/{job.id}/events")

    @app.get("/jobs/{job_id}")
    async def job_info(job_id: str) -> dict:
        return jobs.get(job_id).info()

    @app.websocket("/jobs/{job_id}/events")
    async def job_events(ws: WebSocket, job_id: str) -> None:
        await ws.accept()
        try:
            job = jobs.get(job_id)
        except JobError as err:
            await ws.send_json({"type": "error", "status": err.status, "message": err.message})
            await ws.close(code=4000 + err.status)
            return
        sent = 0
        try:
            while True:
                new = job.events_since(sent)
                for event in new:
                    await ws.send_json(event)
                sent += len(new)
                if any(e["type"] in ("done", "error") for e in new):
                    break
                await asyncio.sleep(poll_s)
            await ws.close()
        except WebSocketDisconnect:
            return

    @app.get("/jobs/{job_id}/midi")
    async def job_midi(job_id: str) -> FileResponse:
        path = jobs.file(job_id, "result.mid")
        return FileResponse(path, media_type="audio/midi", filename=f"musicplat_{job_id[:8]}.mid")

    @app.get("/jobs/{job_id}/roll")
    async def job_roll(job_id: str) -> Response:
        return Response(jobs.file(job_id, "roll.json").read_bytes(), media_type="application/json")

    @app.get("/jobs/{job_id}/png")
    async def job_png(job_id: str, view: str = "roll") -> Response:
        midi = jobs.file(job_id, "result.mid")
        if view == "levels":
            engine = registry.engine(jobs.get(job_id).summary.get("model"))
            if not isinstance(engine, FractalEngine):
                raise JobError(400, f"view=levels needs a fractal job; job {job_id} is {engine.family}")
            return Response(await run_in_threadpool(engine.level_stack_png, midi.parent), media_type="image/png")
        if view != "roll":
            raise JobError(400, f"view={view!r}: choose roll or levels")
        png = midi.with_suffix(".png")
        if not png.is_file():
            score = symusic.Score(str(midi))
            await run_in_threadpool(save_piano_roll_png, score, png, f"job {job_id[:8]}")
        return FileResponse(png, media_type="image/png")

    @app.get("/models")
    async def models() -> dict:
        return {"default": registry.default, "models": await run_in_threadpool(registry.describe),
                "limits": limits}

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_config(cfg) -> FastAPI:
    """The app of a composed conf/web.yaml (what `python -m web` serves)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    limits = OmegaConf.to_container(cfg.limits, resolve=True)
    registry = instantiate(cfg.registry)
    return instantiate(cfg.app, registry=registry, jobs=instantiate(cfg.jobs), limits=limits)

