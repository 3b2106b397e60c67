"""What the API's answers look like, for its OpenAPI schema (`responses=` of the routes).

Documentation only: no answer is built, checked or filtered through these models (the routes
return plain dicts, as before), so a field added to an answer never breaks it. They are open
(extra keys allowed) and hold what DESIGN.md section 3 promises. tests/test_api_schema.py holds
every live answer to them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..progress import Status

_REF = "#/components/schemas/"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class TableProgress(_Answer):
    processed: int
    total: int


class ProgressRecord(_Answer):
    """P of DESIGN.md §3, with the job's id."""

    id: str
    model: str | None = Field(description='The table being restored, or "completed" / "error".')
    recordId: str | None = None
    processed: int
    total: int
    counts: dict[str, TableProgress]
    errors: list[str]
    errorCount: int = 0
    status: Status
    error: str | None = Field(None, description="Why the job stopped, if it failed.")
    startedAt: str | None
    updatedAt: str | None
    finishedAt: str | None = None
    rate: float | None = Field(None, description="Records per second.")
    etaSeconds: float | None = None


class ProgressAnswer(_Answer):
    progress: ProgressRecord


class JobSummary(ProgressRecord):
    kind: str
    target: str
    createdAt: str
    file: str | None
    options: dict[str, Any]
    rejects: bool
    snapshot: bool
    resumable: bool
    undoOf: str | None = None
    undoneBy: str | None = None
    result: dict[str, Any] | None = None
    download: bool = Field(False, description="A completed backup job: its file can be downloaded.")


class JobList(_Answer):
    jobs: list[JobSummary]


class Started(_Answer):
    progressId: str


class JobStatus(Started):
    status: Status


class UndoStarted(Started):
    undoOf: str


class RestoreAnswer(Started):
    """`wait=true`: the result of DESIGN.md §3."""

    success: bool
    processed: int
    total: int
    results: dict[str, dict[str, Any]]
    errors: list[str]
    status: Status


class DatabaseTable(_Answer):
    name: str
    demoColumn: str | None = Field(description="The column flagging demo rows, if the table has one.")


class TableList(_Answer):
    tables: list[DatabaseTable]
    demoData: bool = Field(description="Whether any table has rows flagged as demo data.")


class ConfigAnswer(_Answer):
    pollInterval: int
    maxUploadMb: int
    version: str
    database: str


class DownloadLink(_Answer):
    url: str


_BINARY = {"type": "string", "format": "binary"}
UPLOAD_BODY = {
    "required": True,
    "description": "The backup (read as a stream, never whole): its JSON, gzip or raw bytes, "
    '`{"backupData": backup, "options": {...}}`, or a form whose field `file` holds it.',
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"metadata": {"type": "object"}, "backupData": {"type": "object"}},
                "additionalProperties": {"type": "array", "items": {"type": "object"}},
            }
        },
        "application/gzip": {"schema": _BINARY},
        "application/octet-stream": {"schema": _BINARY},
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {"file": _BINARY}}
        },
    },
}


def events_content() -> dict[str, Any]:
    """Server-sent events, each `data:` a progress record (OpenAPI 3.2's itemSchema)."""
    payload = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": _REF + "ProgressRecord"},
    }
    item = {"type": "object", "required": ["data"], "properties": {"data": payload}}
    return {
        "description": "`data: P` each time P changes",
        "content": {"text/event-stream": {"itemSchema": item}},
    }


def file_content(media_type: str, description: str, *more: str) -> dict[str, Any]:
    """A success answer that is not JSON made by FastAPI: its media types, for the schema."""
    schema = {"type": "string"} if media_type.startswith("text/") else {}
    return {"description": description, "content": {m: {"schema": schema} for m in (media_type, *more)}}
