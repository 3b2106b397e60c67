"""One JSON shape for every error the API returns: {"error": code, "detail": message}.

Handlers translate rowvault's exceptions (and FastAPI's own) into it with the right status;
no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.exceptions import FormParserError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BackupFileError,
    ConfirmationRequired,
    DatabaseError,
    OptionError,
    RowvaultError,
    ValidationError,
)
from ..jobs import JobError

log = logging.getLogger("rowvault.web")
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
}


_MEANINGS = {
    400: "The request or its backup is wrong; `detail` says what (and `problems`, each one).",
    401: "ROWVAULT_TOKEN is set and the request has no valid `Authorization: Bearer` token.",
    404: "No job (or no rejects file) with that id.",
    409: "Another restore holds the database (`progressId` names it), or the job's status does "
    "not allow this.",
    413: "The upload is larger than ROWVAULT_MAX_UPLOAD_MB (or expands past a limit).",
    422: "A query or body parameter has the wrong type or is missing.",
}


class ErrorBody(BaseModel):
    """The shape of every error answer (for the OpenAPI schema; answers are built below)."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="A stable code: not_found, conflict, bad_backup, ...")
    detail: str = Field(description="What went wrong, in words.")
    progressId: str | None = Field(None, description="The job concerned (409: the one holding the database).")
    problems: list[str] | None = Field(None, description="Each problem of a backup that does not fit.")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for routes: these statuses, each with the error shape."""
    return {status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in statuses}


def error_body(status: int, detail: str, *, code: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": code or _CODES.get(status, "error"), "detail": detail, **extra}


def error_response(status: int, detail: str, *, code: str | None = None, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(status, detail, code=code, **extra), status_code=status, headers=headers)


def rowvault_status(exc: RowvaultError) -> tuple[int, str]:
    if isinstance(exc, JobError):
        return exc.status, _CODES.get(exc.status, "error")
    if isinstance(exc, BackupFileError):
        return 400, "bad_backup"
    if isinstance(exc, ValidationError):
        return 400, "does_not_fit"
    if isinstance(exc, (OptionError, ConfirmationRequired)):
        return 400, "bad_option"
    if isinstance(exc, DatabaseError):
        return 503, "database_unavailable"
    return 500, "internal_error"


def install(app: FastAPI) -> None:
    @app.exception_handler(RowvaultError)
    async def rowvault_error(_: Request, exc: RowvaultError) -> JSONResponse:
        status, code = rowvault_status(exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, JobError) and exc.job_id:
            extra["progressId"] = exc.job_id
        if isinstance(exc, ValidationError):
            extra["problems"] = exc.problems
        return error_response(status, str(exc), code=code, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(FormParserError)
    async def form_error(_: Request, exc: FormParserError) -> JSONResponse:
        """A multipart upload its parser cannot read (uploads._multipart) is the client's fault."""
        return error_response(400, f"the multipart body is malformed: {exc}")

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p not in ('query', 'body'))}: {e['msg']}"
            for e in exc.errors()
        ]
        return error_response(422, "; ".join(problems))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")
