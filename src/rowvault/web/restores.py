"""`POST /api/backup`: a restore of an uploaded backup, as a job (jobs.intake does the work).

The database is reserved before the body is read, the body streamed to disk, the file
scanned and checked, the job recorded and queued - each blocking step on the thread pool.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..jobs import Job
from ..jobs.intake import RestoreIntake
from ..jobs.service import Service
from . import uploads
from .answers import UPLOAD_BODY, RestoreAnswer, Started
from .errors import error_responses

FINISHED_POLL_SECONDS = 0.1


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


async def finished(service: Service, job_id: str, future: Future[Job] | None) -> Job:
    """Wait for the job to end (`wait=true`): its future here, else the state store."""
    if future is not None:
        return await asyncio.wrap_future(future)
    while True:
        job = await run_in_threadpool(service.job, job_id)
        if job.finished:
            return job
        await asyncio.sleep(FINISHED_POLL_SECONDS)


def install(router: APIRouter, service: Service) -> None:
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
        later = not wait and "respond-async" in request.headers.get("prefer", "").lower()
        query = {
            "batchSize": batchSize,
            "mode": mode,
            "dryRun": dryRun,
            "skipUnknown": skipUnknown,
            "confirm": confirm,
            "snapshot": snapshot,
        }
        intake = RestoreIntake(service)
        await run_in_threadpool(intake.reserve)  # 409 before the body is read: nothing received
        try:
            with intake.held():
                upload = await uploads.receive(
                    request, intake.upload_path, service.settings.max_upload_mb << 20, limits=intake.limits
                )
                given = {**upload.options, **{k: v for k, v in query.items() if v is not None}}
                job, summary = await run_in_threadpool(intake.accept, upload.filename, given, scan=not later)
        except BaseException:  # bad upload, does not fit, client gone, cancelled: free the database
            await asyncio.shield(run_in_threadpool(intake.release))
            raise
        future = await run_in_threadpool(intake.queue, job, summary)
        if wait:
            return JSONResponse(restore_answer(await finished(service, job.id, future)), status_code=200)
        if later:
            return JSONResponse(
                {"progressId": job.id}, status_code=202, headers={"Preference-Applied": "respond-async"}
            )
        return {"progressId": job.id}
