"""The routes of backup jobs: the tables a backup can hold, starting a backup as a job, and
its file once written. The job is followed like a restore (progress, events, cancel, the job
list); the streamed download `GET /api/backup` stays for the clients that use it.

Nothing a request sends becomes a path: the job writes ROWVAULT_HOME/backups/<its id>, and
the file route finds the file from the job's id as the state store holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..jobs import Job, backups
from .answers import Started, TableList, file_content
from .errors import error_responses

if TYPE_CHECKING:
    from ..jobs.service import Service


class BackupRequest(BaseModel):
    """What to back up; every field may be left out (then: every table, everything, gzip)."""

    model_config = ConfigDict(extra="forbid")
    tables: list[str] | None = Field(None, description="Only these tables (default: all).")
    exclude: list[str] = Field(default_factory=list, description="Leave these tables out.")
    limits: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="Keep only each table's N newest rows: {table: N}."
    )
    includeDemoData: bool = Field(True, description="false: leave out rows flagged as demo data.")
    gzip: bool = Field(True, description="Write a .json.gz (default) rather than a .json.")


async def _backup_request(request: Request) -> BackupRequest:
    """The body, read after the router's guard (a request without the token is a 401
    whatever its body); an empty body asks for the defaults."""
    body = await request.body()
    if not body.strip():
        return BackupRequest.model_validate({})
    try:
        return BackupRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def install(router: APIRouter, service: Service) -> None:
    """Add the backup-job routes to the API's router."""

    @router.get("/tables", tags=["backup"], responses={200: {"model": TableList}})
    async def tables() -> dict[str, Any]:
        """The database's tables, each with its demo-data column if it has one: what a backup
        can hold, limit, and leave demo rows out of."""
        found = await run_in_threadpool(backups.database_tables, service.runner.database.engine)
        return {"tables": found, "demoData": any(t["demoColumn"] for t in found)}

    @router.post(
        "/backup/jobs",
        status_code=202,
        tags=["backup"],
        responses={
            202: {"model": Started, "description": "The backup job is queued: follow its progressId."},
            **error_responses(400),
        },
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": BackupRequest.model_json_schema()}},
            }
        },
    )
    async def start_backup(body: Annotated[BackupRequest, Depends(_backup_request)]) -> dict[str, Any]:
        """Start a backup as a job: its progress, events, cancel and entry in the job list are
        a restore's; once completed, its file is at `/api/backup/jobs/{id}/file`."""
        runner = service.runner
        options = await run_in_threadpool(backups.job_options, runner.database.engine, body.model_dump())
        job = await run_in_threadpool(runner.create_backup, options)
        await run_in_threadpool(service.submit, job)
        return {"progressId": job.id}

    @router.get(
        "/backup/jobs/{job_id}/file",
        tags=["backup"],
        response_class=FileResponse,
        responses={
            200: file_content("application/gzip", "The backup the job wrote", "application/json"),
            **error_responses(404),
        },
    )
    async def backup_file(job_id: str) -> FileResponse:
        """The file a completed backup job wrote, under the name it was given."""
        found: Job = await run_in_threadpool(service.job, job_id)
        path = await run_in_threadpool(file_of, service.runner.home, found)
        if path is None:
            raise HTTPException(status_code=404, detail=f"job {job_id} has no backup file")
        gzip = str(path).endswith(".gz")
        return FileResponse(
            path,
            media_type="application/gzip" if gzip else "application/json",
            filename=str(found.options.get("fileName") or path.name),
        )


def file_of(home: Path, job: Job) -> Path | None:
    """The file of a completed backup job, if it is still there; else None."""
    if job.kind != "backup" or job.status != "completed":
        return None
    try:
        path = backups.output_path(home, job)
    except ValueError:
        return None
    return path if path.is_file() else None
