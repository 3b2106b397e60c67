"""Downloads: `GET /api/backup` streams a backup to the client while it is being written,
and `POST /api/downloads` signs a short-lived link to a download for a browser to follow.

The streamed backup runs `backup()` on a thread that writes into a bounded hand-off, which
the response reads from: never whole in memory, and when the client goes away the backup's
next write raises and the backup stops.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from itertools import chain
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..backup import backup, check_options
from ..handoff import Handoff
from ..jobs.intake import flag
from ..jobs.service import Service
from ..load.matching import normalize
from ..options import BackupOptions
from . import backups as backup_jobs
from .answers import DownloadLink, file_content
from .errors import error_responses
from .tickets import Tickets

HANDOFF_DEPTH = 32


class _Closed(Exception):
    """The client stopped reading."""


class _HandoffWriter(io.RawIOBase):
    def __init__(self, handoff: Handoff[bytes]) -> None:
        self._handoff = handoff

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if not self._handoff.put(chunk):
            raise _Closed
        return len(chunk)


def stream_backup(database: Any, options: BackupOptions, *, depth: int = HANDOFF_DEPTH) -> Iterator[bytes]:
    def produce(handoff: Handoff[bytes]) -> None:
        with suppress(_Closed):  # the client went away: stop writing
            backup(database, _HandoffWriter(handoff), options=options)

    return Handoff[bytes](depth).run(produce, "rowvault-download")


class DownloadRequest(BaseModel):
    url: str = Field(description="The download's path and query, e.g. /api/backup?gzip=true")


async def _download_request(request: Request) -> DownloadRequest:
    """The body, read only after the router's guard let the request in: a request without
    the token is a 401 whatever its body (FastAPI reads a body parameter before that)."""
    try:
        return DownloadRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def backup_options(
    engine: Any,
    include_demo: bool,
    audit_log_limit: int | None,
    tables: str | None,
    limit: list[str],
    gzip: bool,
) -> BackupOptions:
    """The streamed backup's options from its query, checked against the database (blocking)."""
    options = BackupOptions(
        tables=[t.strip() for t in tables.split(",") if t.strip()] if tables else None,
        limits=_limits(engine, audit_log_limit, limit),
        include_demo_data=include_demo,
        compress=gzip,
    )
    check_options(engine, options)
    return options


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


def _check_download(service: Service, url: str) -> None:
    """A download's options checked now (blocking), so a mistake is a 400 at signing."""
    parts = urlsplit(url)
    if parts.path == "/api/backup":
        query = parse_qs(parts.query)

        def one(name: str) -> str | None:
            return query[name][-1] if name in query else None

        limit = one("auditLogLimit")
        backup_options(
            service.runner.database.engine,
            flag(one("includeDemoData") or "true"),
            int(limit) if limit and limit.isdigit() else None,
            one("tables"),
            query.get("limit", []),
            flag(one("gzip") or "false"),
        )
        return
    job_id = parts.path.split("/")[4]
    found = service.job(job_id)
    if parts.path.endswith("/rejects") and not found.rejects_path:
        raise HTTPException(status_code=404, detail=f"job {job_id} rejected no records")
    if parts.path.endswith("/file") and backup_jobs.file_of(service.runner.home, found) is None:
        raise HTTPException(status_code=404, detail=f"job {job_id} has no backup file")


def install(router: APIRouter, service: Service, tickets: Tickets) -> None:
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
            backup_options, engine, includeDemoData, auditLogLimit, tables, limit or [], gzip
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
        """A link to a download (`/api/backup?...`, `/api/backup/jobs/{id}/rejects`,
        `.../errors` or `.../file`) that works for a minute without the Authorization header:
        a browser streams a download to disk only when it follows a link. The download's
        options are checked now, so a mistake is a 400 here rather than a broken file."""
        try:
            signed = tickets.sign(body.url)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        await run_in_threadpool(_check_download, service, body.url)
        return {"url": signed}
