"""The HTTP API of DESIGN.md §3: thin handlers over the job runner and the engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..backup import check_options
from ..errors import RowvaultError
from ..jobs import Job, JobRunner
from ..jobs.model import new_job_id
from ..jobs.runner import STALE_AFTER_SECONDS, owner_gone
from ..jobs.worker import WorkerPool
from ..limits import ReadLimits
from ..matching import normalize
from ..options import MODES, BackupOptions, RestoreOptions
from ..reader import BackupFile, FileSummary
from ..restore import validate
from ..settings import Settings
from . import backups as backup_jobs
from . import uploads
from .answers import (
    UPLOAD_BODY,
    ConfigAnswer,
    DownloadLink,
    JobList,
    JobStatus,
    JobSummary,
    ProgressAnswer,
    RestoreAnswer,
    Started,
    UndoStarted,
    events_content,
    file_content,
)
from .auth import token_checker
from .download import stream_backup
from .errors import error_responses
from .tickets import Tickets

log = logging.getLogger("rowvault.web")
STREAM_POLL_SECONDS = 0.25  # as often as a job writes its progress (PROGRESS_WRITES_PER_SECOND)
STREAM_KEEPALIVE_SECONDS = 15.0


class Service:
    """What the routes share: settings and the job runner (started by the app's lifespan)."""

    def __init__(self, settings: Settings, runner: JobRunner | None = None) -> None:
        self.settings = settings
        self._runner = runner
        self._workers: WorkerPool | None = None
        self._queue: Any = None  # the Celery app, when jobs run on Celery workers

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            raise HTTPException(status_code=503, detail="the service is starting or stopping")
        return self._runner

    def start(self) -> None:
        if self._runner is None:
            from ..jobs import new_runner

            if not self.settings.database_url:
                raise RowvaultError("no database: set DATABASE_URL or pass --db")
            self._runner = new_runner(self.settings)
        if self.settings.jobs == "celery":
            from ..jobs.celery_queue import make_app

            self._queue = make_app(self.settings.broker_url)
            self.recover_stale()
            return
        self._runner.recover()
        if self.settings.jobs == "process":
            self._workers = WorkerPool(self.settings, self._runner, self.settings.workers)
            self._workers.start()

    def recover_stale(self) -> None:
        """Jobs whose process is gone: on Celery they go back on the queue to resume on a
        live worker; run here, they show `interrupted` (resume is a person's call)."""
        if self._queue is None:
            self.runner.recover()
            return
        from ..jobs.celery_queue import requeue_gone

        try:
            requeue_gone(self._queue, self.runner.store)
        except Exception:  # the broker is down: the workers' own sweep will do it
            log.exception("[service] queueing again the jobs of dead workers failed")

    def stop(self) -> None:
        if self._workers is not None:
            self._workers.stop()
            self._workers = None
        if self._runner is not None:
            self._runner.close()
            self._runner.store.close()
            self._runner = None

    def submit(self, job: Job, summary: FileSummary | None = None) -> Future[Job] | None:
        """Queue `job`: for the worker processes, Celery, or this process's thread pool."""
        if self._workers is None and self._queue is None:
            return self.runner.submit(job, summary=summary)
        if summary is not None:
            self.runner.save_summary(job, summary)
        if self._workers is not None:
            self._workers.notify()
        else:
            self._send(job)
        return None

    def _send(self, job: Job) -> None:
        from ..jobs.celery_queue import QueueUnavailable, send

        try:
            send(self._queue, job.id, job.target_key)
        except QueueUnavailable as exc:
            self.runner.abandon(job.id, str(exc))
            raise HTTPException(status_code=503, detail=str(exc)) from None

    async def finished(self, job_id: str, future: Future[Job] | None) -> Job:
        """Wait for the job to end (`wait=true`)."""
        if future is not None:
            return await asyncio.wrap_future(future)
        while True:
            job = await run_in_threadpool(_job_or_404, self, job_id)
            if job.finished:
                return job
            await asyncio.sleep(0.1)


def _job_or_404(service: Service, job_id: str) -> Job:
    store = service.runner.store
    job = store.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job with id {job_id!r}")
    stale = job.status == "running" and (
        (job.heartbeat_at or 0) < time.time() - STALE_AFTER_SECONDS
        or (job.owner is not None and owner_gone(job.owner))
    )
    if stale:  # its process is gone
        service.recover_stale()
        job = store.get(job_id) or job
    return job


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _restore_options(given: dict[str, Any]) -> dict[str, Any]:
    """Options from the body, the form or the query, checked; camelCase as the API speaks."""
    options: dict[str, Any] = {}
    if given.get("batchSize") not in (None, "", "auto"):
        try:
            options["batchSize"] = int(given["batchSize"])
        except (TypeError, ValueError):
            raise HTTPException(status_code=400, detail="batchSize must be a whole number") from None
    if given.get("mode") not in (None, ""):
        if given["mode"] not in MODES:
            raise HTTPException(status_code=400, detail=f"mode must be one of {', '.join(MODES)}")
        options["mode"] = given["mode"]
    for key in ("dryRun", "skipUnknown", "confirmReplace", "snapshot"):
        if given.get(key) not in (None, ""):
            options[key] = _flag(given[key])
    if "confirm" in given and given["confirm"] not in (None, ""):
        options["confirmReplace"] = _flag(given["confirm"])
    RestoreOptions(  # raises OptionError / ConfirmationRequired now, not in the job
        mode=options.get("mode", "upsert"),
        batch_size=options.get("batchSize"),
        dry_run=options.get("dryRun", False),
        confirm_replace=options.get("confirmReplace", False),
    )
    return options


def restore_answer(job: Job) -> dict[str, Any]:
    """The `wait=true` answer: the result of DESIGN.md §3, also for a job that failed."""
    if job.result is not None:
        answer = dict(job.result)
        if job.status != "completed":
            answer["success"] = False
            answer["errors"] = [job.error, *answer.get("errors", [])] if job.error else answer["errors"]
    else:
        answer = {
            "success": False,
            "processed": 0,
            "total": 0,
            "results": {},
            "errors": [job.error] if job.error else [],
        }
    answer.update(progressId=job.id, status=job.status)
    return answer


def job_summary(job: Job, home: Path | None = None) -> dict[str, Any]:
    """A job as the job list shows it; `home` (the service's) tells whether a completed
    backup's file is still there to download."""
    record = job.progress_record()
    record.update(
        kind=job.kind,
        target=job.target,
        createdAt=datetime.fromtimestamp(job.created_at, UTC).isoformat().replace("+00:00", "Z"),
        file=job.options.get("fileName") or (Path(job.source).name if job.source else None),
        options=job.options,
        rejects=bool(job.rejects_path and Path(job.rejects_path).exists()),
        snapshot=_has_snapshot(job),
        undoOf=job.options.get("undoOf"),
        undoneBy=job.options.get("undoneBy"),
        resumable=job.resumable,
        error=job.error,
        result={k: job.result.get(k) for k in _SHOWN_RESULT[job.kind] if k in job.result}
        if job.result
        else None,
        download=home is not None and backup_jobs.file_of(home, job) is not None,
    )
    return record


_SHOWN_RESULT = {
    "restore": ("success", "processed", "total", "results"),
    "backup": ("total", "tables", "bytes", "fileBytes", "seconds"),
}


def build_router(service: Service) -> APIRouter:
    token = service.settings.token_value
    tickets = Tickets(token)
    router = APIRouter(
        prefix="/api",
        dependencies=[Depends(token_checker(token, tickets))],
        responses=error_responses(401, 422),
    )

    @router.get("/config", tags=["service"], responses={200: {"model": ConfigAnswer}})
    async def config() -> dict[str, Any]:
        """What the web page needs to know: polling period, limits, version."""
        s = service.settings
        return {
            "pollInterval": s.restore_poll_interval,
            "maxUploadMb": s.max_upload_mb,
            "version": __version__,
            "database": service.runner.target,
        }

    @router.post(
        "/backup",
        status_code=202,
        tags=["restore"],
        responses={
            202: {"model": Started, "description": "The restore is queued: poll its progressId."},
            200: {"model": RestoreAnswer, "description": "`wait=true`: the restore has finished."},
            **error_responses(400, 409, 413),
        },
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def start_restore(
        request: Request,
        wait: bool = False,
        batchSize: str | None = None,
        mode: str | None = None,
        dryRun: str | None = None,
        skipUnknown: str | None = None,
        confirm: str | None = None,
        snapshot: str | None = None,
    ) -> Any:
        """Restore a backup sent as the body (JSON, gzip, `{"backupData": ...}`) or as the
        multipart field `file`. Answers 202 `{"progressId"}` once the file is received and
        checked, or with `wait=true` the result when the restore has finished. With the header
        `Prefer: respond-async` the answer comes as soon as the file is received: the check
        is then the job's first stage (`reading`, shown with bytes read), and a file that
        fails it ends the job with the reason."""
        runner = service.runner
        later = not wait and "respond-async" in request.headers.get("prefer", "").lower()
        job_id = new_job_id()
        holder = await run_in_threadpool(
            runner.store.try_lock, runner.key, job_id, stale_after=STALE_AFTER_SECONDS
        )
        if holder is not None:  # answered before the body is read: nothing received, nothing recorded
            return _busy_response(holder)
        query = {
            "batchSize": batchSize,
            "mode": mode,
            "dryRun": dryRun,
            "skipUnknown": skipUnknown,
            "confirm": confirm,
            "snapshot": snapshot,
        }
        try:
            with runner.store.keep_fresh(runner.key, job_id):
                job, summary = await _receive_restore(service, request, job_id, query, scan=not later)
        except BaseException:  # bad upload, does not fit, client gone, cancelled: free the database
            runner.store.unlock(runner.key, job_id)
            raise
        future = await run_in_threadpool(service.submit, job, summary)  # a broker publish, a file
        if wait:
            finished = await service.finished(job.id, future)
            return JSONResponse(restore_answer(finished), status_code=200)
        if later:
            return JSONResponse(
                {"progressId": job.id}, status_code=202, headers={"Preference-Applied": "respond-async"}
            )
        return {"progressId": job.id}

    @router.get(
        "/backup/progress",
        tags=["restore"],
        responses={200: {"model": ProgressAnswer}, **error_responses(404)},
    )
    async def progress(id: Annotated[str, Query(description="The progressId")]) -> dict[str, Any]:
        """`{"progress": P}` (DESIGN.md §3); 404 for an unknown id."""
        job = await run_in_threadpool(_job_or_404, service, id)
        return {"progress": job.progress_record()}

    @router.get(
        "/backup/progress/stream",
        tags=["restore"],
        response_class=StreamingResponse,
        responses={200: events_content(), **error_responses(404)},
    )
    async def progress_stream(id: str) -> StreamingResponse:
        """Server-sent events: the progress record each time it changes, until the job ends."""
        first = await run_in_threadpool(_job_or_404, service, id)
        return StreamingResponse(
            _events(service, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post(
        "/backup/cancel",
        status_code=202,
        tags=["restore"],
        responses={202: {"model": JobStatus}, **error_responses(404, 409)},
    )
    async def cancel(id: str) -> dict[str, Any]:
        """Ask a job to stop after its current batch."""
        job = await run_in_threadpool(service.runner.cancel, id)
        return {"progressId": job.id, "status": job.status}

    @router.post(
        "/backup/resume",
        status_code=202,
        tags=["restore"],
        responses={202: {"model": JobStatus}, **error_responses(404, 409)},
    )
    async def resume(id: str) -> dict[str, Any]:
        """Run an interrupted, cancelled or failed job again from its checkpoint."""
        job = await run_in_threadpool(service.runner.prepare_resume, id)
        await run_in_threadpool(service.submit, job)
        return {"progressId": job.id, "status": job.status}

    @router.post(
        "/backup/undo",
        status_code=202,
        tags=["restore"],
        responses={202: {"model": UndoStarted}, **error_responses(404, 409)},
    )
    async def undo(id: str) -> dict[str, Any]:
        """Put back what a finished restore changed, from the safety snapshot it took
        (`snapshot=true`): a new job, whose progressId is returned."""
        job = await run_in_threadpool(service.runner.create_undo, id)
        await run_in_threadpool(service.submit, job)
        return {"progressId": job.id, "undoOf": id}

    @router.get("/backup/jobs", tags=["jobs"], responses={200: {"model": JobList}})
    async def jobs(limit: int = 50) -> dict[str, Any]:
        """Recent jobs, newest first, each a progress record with its id."""
        recent = await run_in_threadpool(service.runner.store.recent, min(max(limit, 1), 500))
        home = service.runner.home
        return {"jobs": [job_summary(job, home) for job in recent]}

    @router.get(
        "/backup/jobs/{job_id}", tags=["jobs"], responses={200: {"model": JobSummary}, **error_responses(404)}
    )
    async def job(job_id: str) -> dict[str, Any]:
        found = await run_in_threadpool(_job_or_404, service, job_id)
        return job_summary(found, service.runner.home)

    @router.get(
        "/backup/jobs/{job_id}/rejects",
        tags=["jobs"],
        response_class=FileResponse,
        responses={200: file_content("application/json", "The rejects file"), **error_responses(404)},
    )
    async def rejects(job_id: str) -> FileResponse:
        """The job's rejects file (backup format, with the reason beside each record)."""
        found = await run_in_threadpool(_job_or_404, service, job_id)
        if not found.rejects_path or not Path(found.rejects_path).exists():
            raise HTTPException(status_code=404, detail=f"job {job_id} rejected no records")
        return FileResponse(
            found.rejects_path, media_type="application/json", filename=f"rejects-{job_id}.json"
        )

    @router.get(
        "/backup/jobs/{job_id}/errors",
        tags=["jobs"],
        response_class=Response,
        responses={200: file_content("text/plain", "One error message a line"), **error_responses(404)},
    )
    async def errors(job_id: str) -> PlainTextResponse:
        """Every error message of the job, one per line."""
        await run_in_threadpool(_job_or_404, service, job_id)
        messages = await run_in_threadpool(service.runner.store.errors, job_id)
        return PlainTextResponse(
            "\n".join(messages) + ("\n" if messages else ""),
            headers={"Content-Disposition": f'attachment; filename="errors-{job_id}.txt"'},
        )

    @router.get(
        "/backup",
        tags=["backup"],
        response_class=StreamingResponse,
        responses={
            200: file_content("application/json", "The backup", "application/gzip"),
            **error_responses(400),
        },
    )
    async def download(
        includeDemoData: bool = True,
        auditLogLimit: int | None = None,
        tables: str | None = None,
        limit: Annotated[list[str] | None, Query(description="table:N, repeatable")] = None,
        gzip: bool = False,
    ) -> StreamingResponse:
        """Download a backup, streamed as it is written."""
        engine = service.runner.database.engine
        options = await run_in_threadpool(
            _backup_options, engine, includeDemoData, auditLogLimit, tables, limit or [], gzip
        )
        chunks = stream_backup(engine, options)
        first = await run_in_threadpool(next, chunks, b"")  # option errors surface as 400 here
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        name = f"rowvault-backup-{stamp}.json" + (".gz" if gzip else "")
        return StreamingResponse(
            chain([first], chunks),
            media_type="application/gzip" if gzip else "application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.post(
        "/downloads",
        tags=["service"],
        responses={200: {"model": DownloadLink}, **error_responses(400, 404)},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": DownloadRequest.model_json_schema()}},
            }
        },
    )
    async def download_link(body: Annotated[DownloadRequest, Depends(_download_request)]) -> dict[str, str]:
        """A link to a download (`/api/backup?...`, `/api/backup/jobs/{id}/rejects` or
        `.../errors`) that works for a minute without the Authorization header: a browser
        streams a download to disk only when it follows a link. The download's options are
        checked now, so a mistake is a 400 here rather than a broken file."""
        try:
            signed = tickets.sign(body.url)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        parts = urlsplit(body.url)
        if parts.path == "/api/backup":
            query = parse_qs(parts.query)

            def one(name: str) -> str | None:
                return query[name][-1] if name in query else None

            limit = one("auditLogLimit")
            await run_in_threadpool(
                _backup_options,
                service.runner.database.engine,
                _flag(one("includeDemoData") or "true"),
                int(limit) if limit and limit.isdigit() else None,
                one("tables"),
                query.get("limit", []),
                _flag(one("gzip") or "false"),
            )
        else:
            job_id = parts.path.split("/")[4]
            found = await run_in_threadpool(_job_or_404, service, job_id)
            if parts.path.endswith("/rejects") and not found.rejects_path:
                raise HTTPException(status_code=404, detail=f"job {job_id} rejected no records")
            if parts.path.endswith("/file") and backup_jobs.file_of(service.runner.home, found) is None:
                raise HTTPException(status_code=404, detail=f"job {job_id} has no backup file")
        return {"url": signed}

    backup_jobs.install(router, service, _job_or_404)
    return router


class DownloadRequest(BaseModel):
    url: str = Field(description="The download's path and query, e.g. /api/backup?gzip=true")


async def _download_request(request: Request) -> DownloadRequest:
    """The body, read only after the router's guard let the request in: a request without
    the token is a 401 whatever its body (FastAPI reads a body parameter before that)."""
    try:
        return DownloadRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _backup_options(
    engine: Any,
    include_demo: bool,
    audit_log_limit: int | None,
    tables: str | None,
    limit: list[str],
    gzip: bool,
) -> BackupOptions:
    options = BackupOptions(
        tables=[t.strip() for t in tables.split(",") if t.strip()] if tables else None,
        limits=_limits(engine, audit_log_limit, limit),
        include_demo_data=include_demo,
        compress=gzip,
    )
    check_options(engine, options)
    return options


def _has_snapshot(job: Job) -> bool:
    snapshot = job.checkpoint.get("snapshot")
    if not snapshot:
        return False
    return not snapshot.get("tables") or Path(snapshot["path"]).exists()


async def _receive_restore(
    service: Service, request: Request, job_id: str, query: dict[str, str | None], *, scan: bool = True
) -> tuple[Job, FileSummary | None]:
    """Receive, scan and check the upload of job `job_id` (whose lock the caller holds), then
    record the job; the upload file is removed if any of it fails. Without `scan` the job
    scans and checks it (no summary is returned)."""
    runner = service.runner
    limits = read_limits(service.settings)
    upload = await uploads.receive(
        request,
        service.settings.uploads / f"{job_id}.upload",
        service.settings.max_upload_mb << 20,
        limits=limits,
    )
    try:
        options = _restore_options({**upload.options, **{k: v for k, v in query.items() if v is not None}})
        if upload.filename != "upload":
            options["fileName"] = upload.filename
        if not scan:
            return runner.create_restore(upload.path, options, job_id=job_id), None
        file = BackupFile(upload.path, name=upload.filename, limits=limits)
        summary = await run_in_threadpool(file.scan)
        check = RestoreOptions(
            mode=options.get("mode", "upsert"),
            dry_run=True,
            skip_unknown=options.get("skipUnknown", False),
        )
        await run_in_threadpool(validate, runner.database.engine, upload.path, options=check, summary=summary)
        return runner.create_restore(upload.path, options, job_id=job_id), summary
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise


def read_limits(settings: Settings) -> ReadLimits:
    """What scanning an upload may cost: the engine's line cap, and the settings' caps on
    decompression (ROWVAULT_MAX_EXPANDED_MB, ROWVAULT_MAX_RATIO)."""
    return ReadLimits(max_expanded_bytes=settings.max_expanded_mb << 20, max_ratio=settings.max_ratio)


def _busy_response(holder: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": "conflict",
            "progressId": holder,
            "detail": f"another restore (job {holder}) is running on this database",
        },
        status_code=409,
    )


def _limits(engine: Any, audit_log_limit: int | None, given: list[str]) -> dict[str, int]:
    limits: dict[str, int] = {}
    for item in given:
        table, sep, count = item.rpartition(":")
        if not sep or not table or not count.isdigit():
            raise HTTPException(status_code=400, detail=f"limit {item!r}: expected table:N")
        limits[table] = int(count)
    if audit_log_limit is not None:
        names = sa.inspect(engine).get_table_names()
        found = [n for n in names if normalize(n) in ("auditlogs", "auditlog")]
        if not found:
            raise HTTPException(status_code=400, detail="auditLogLimit: the database has no audit log table")
        limits[found[0]] = audit_log_limit
    return limits


async def _events(service: Service, job: Job) -> AsyncIterator[bytes]:
    last: bytes | None = None
    quiet_since = time.monotonic()
    while True:
        payload = orjson.dumps(job.progress_record())
        if payload != last:
            yield b"data: " + payload + b"\n\n"
            last = payload
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > STREAM_KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        if job.finished:
            return
        await asyncio.sleep(STREAM_POLL_SECONDS)
        job = await run_in_threadpool(_job_or_404, service, job.id)
