"""The routes of a job by its id, restore or backup alike: its progress (polled, or as
server-sent events), cancel, resume, undo, the job list, and a job's rejects and errors.

Every state store query and file check runs on the thread pool; the event stream sleeps
on the event loop between its reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..jobs import Job
from ..jobs.service import Service
from . import backups as backup_jobs
from .answers import JobList, JobStatus, JobSummary, ProgressAnswer, UndoStarted, events_content, file_content
from .errors import error_responses

STREAM_POLL_SECONDS = 0.25  # as often as a job writes its progress (PROGRESS_WRITES_PER_SECOND)
STREAM_KEEPALIVE_SECONDS = 15.0
_SHOWN_RESULT = {
    "restore": ("success", "processed", "total", "results"),
    "backup": ("total", "tables", "bytes", "fileBytes", "seconds"),
}


def job_summary(job: Job, home: Path | None = None) -> dict[str, Any]:
    """A job as the job list shows it; `home` (the service's) tells whether a completed
    backup's file is still there to download. Looks at files: call it off the event loop."""
    record = job.progress_record()
    record.update(
        kind=job.kind,
        target=job.target,
        createdAt=datetime.fromtimestamp(job.created_at, UTC).isoformat().replace("+00:00", "Z"),
        file=job.options.get("fileName") or (Path(job.source).name if job.source else None),
        options=job.options,
        rejects=rejects_of(job) is not None,
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


def rejects_of(job: Job) -> Path | None:
    """The job's rejects file, if it wrote one and it is still there."""
    path = Path(job.rejects_path) if job.rejects_path else None
    return path if path is not None and path.exists() else None


def _has_snapshot(job: Job) -> bool:
    snapshot = job.checkpoint.get("snapshot")
    if not snapshot:
        return False
    return not snapshot.get("tables") or Path(snapshot["path"]).exists()


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
        job = await run_in_threadpool(service.job, job.id)


def install(router: APIRouter, service: Service) -> None:
    @router.get(
        "/backup/progress",
        tags=["restore"],
        responses={200: {"model": ProgressAnswer}, **error_responses(404)},
    )
    async def progress(id: Annotated[str, Query(description="The progressId")]) -> dict[str, Any]:
        """`{"progress": P}` (DESIGN.md §3); 404 for an unknown id."""
        job = await run_in_threadpool(service.job, id)
        return {"progress": job.progress_record()}

    @router.get(
        "/backup/progress/stream",
        tags=["restore"],
        response_class=StreamingResponse,
        responses={200: events_content(), **error_responses(404)},
    )
    async def progress_stream(id: str) -> StreamingResponse:
        """Server-sent events: the progress record each time it changes, until the job ends."""
        first = await run_in_threadpool(service.job, id)
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

    def listing(limit: int) -> list[dict[str, Any]]:
        home = service.runner.home
        return [job_summary(job, home) for job in service.runner.store.recent(limit)]

    @router.get("/backup/jobs", tags=["jobs"], responses={200: {"model": JobList}})
    async def jobs(limit: int = 50) -> dict[str, Any]:
        """Recent jobs, newest first, each a progress record with its id."""
        return {"jobs": await run_in_threadpool(listing, min(max(limit, 1), 500))}

    def summary(job_id: str) -> dict[str, Any]:
        return job_summary(service.job(job_id), service.runner.home)

    @router.get(
        "/backup/jobs/{job_id}", tags=["jobs"], responses={200: {"model": JobSummary}, **error_responses(404)}
    )
    async def job(job_id: str) -> dict[str, Any]:
        return await run_in_threadpool(summary, job_id)

    def rejects_file(job_id: str) -> Path:
        path = rejects_of(service.job(job_id))
        if path is None:
            raise HTTPException(status_code=404, detail=f"job {job_id} rejected no records")
        return path

    @router.get(
        "/backup/jobs/{job_id}/rejects",
        tags=["jobs"],
        response_class=FileResponse,
        responses={200: file_content("application/json", "The rejects file"), **error_responses(404)},
    )
    async def rejects(job_id: str) -> FileResponse:
        """The job's rejects file (backup format, with the reason beside each record)."""
        path = await run_in_threadpool(rejects_file, job_id)
        return FileResponse(path, media_type="application/json", filename=f"rejects-{job_id}.json")

    def error_lines(job_id: str) -> list[str]:
        service.job(job_id)
        return service.runner.store.errors(job_id)

    @router.get(
        "/backup/jobs/{job_id}/errors",
        tags=["jobs"],
        response_class=Response,
        responses={200: file_content("text/plain", "One error message a line"), **error_responses(404)},
    )
    async def errors(job_id: str) -> PlainTextResponse:
        """Every error message of the job, one per line."""
        messages = await run_in_threadpool(error_lines, job_id)
        return PlainTextResponse(
            "\n".join(messages) + ("\n" if messages else ""),
            headers={"Content-Disposition": f'attachment; filename="errors-{job_id}.txt"'},
        )
