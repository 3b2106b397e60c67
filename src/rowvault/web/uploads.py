"""Receive a backup upload straight to disk, never whole in memory, with a size limit.

Accepted: a raw JSON or gzip body, a JSON body `{"backupData": {...}, "options": {...}}`, or a
multipart form whose field `file` holds the backup (other fields are options).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import HTTPException, Request
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from ..file.format import open_stream
from ..file.jsonlayout import find_key
from ..file.limits import ReadLimits

MAX_FIELD_BYTES = 64 << 10
SPOOL_BYTES = 1 << 20


@dataclass
class Upload:
    path: Path
    size: int
    options: dict[str, Any] = field(default_factory=dict)
    filename: str = "upload"
    """What messages call it: the form's file name, else "upload"."""


class _Limit:
    def __init__(self, max_bytes: int) -> None:
        self.max = max_bytes
        self.seen = 0

    def add(self, n: int) -> None:
        self.seen += n
        if self.seen > self.max:
            raise HTTPException(
                status_code=413,
                detail=f"the upload is larger than the limit of {self.max >> 20} MB (ROWVAULT_MAX_UPLOAD_MB)",
            )


class _Spool:
    """The upload's bytes to its file in writes of SPOOL_BYTES on the thread pool: the event
    loop never waits on the disk."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data

    async def flush(self, at: int = SPOOL_BYTES) -> None:
        if self.buffer and len(self.buffer) >= at:
            data = bytes(self.buffer)
            self.buffer.clear()
            await run_in_threadpool(self.out.write, data)


async def receive(
    request: Request, dest: Path, max_bytes: int, *, limits: ReadLimits | None = None
) -> Upload:
    """Stream the request body into `dest`; 413 past `max_bytes`, 400 for an empty body.
    `limits` bound the reading of a body's options, as they bound its scan."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + (1 << 20):
        raise HTTPException(
            status_code=413,
            detail=f"the upload ({int(declared) >> 20} MB) is larger than the limit of "
            f"{max_bytes >> 20} MB (ROWVAULT_MAX_UPLOAD_MB)",
        )
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    filename = "upload"
    await run_in_threadpool(dest.parent.mkdir, parents=True, exist_ok=True)
    try:
        out = await run_in_threadpool(open, dest, "wb")
        try:
            spool = _Spool(out)
            if content_type == b"multipart/form-data":
                options = await _multipart(request, spool, params.get(b"boundary"), _Limit(max_bytes))
                filename = options.pop("\0filename", None) or filename
            else:
                options = {}
                limit = _Limit(max_bytes)
                async for chunk in request.stream():
                    limit.add(len(chunk))
                    spool.write(chunk)
                    await spool.flush()
            await spool.flush(at=0)
        finally:
            await run_in_threadpool(out.close)
        size = (await run_in_threadpool(dest.stat)).st_size
    except BaseException:
        await run_in_threadpool(dest.unlink, missing_ok=True)
        raise
    if size == 0:
        await run_in_threadpool(dest.unlink, missing_ok=True)
        detail = "the request has no backup in it (empty body)"
        if filename != "upload":
            detail = f"{filename}: the file is empty: it is not a backup"
        raise HTTPException(status_code=400, detail=detail)
    if not options and content_type in (b"application/json", b"", b"text/plain"):
        options = await run_in_threadpool(read_body_options, dest, limits=limits)
    return Upload(dest, size, options, filename)


async def _multipart(request: Request, out: _Spool, boundary: bytes | None, limit: _Limit) -> dict[str, Any]:
    if not boundary:
        raise HTTPException(status_code=400, detail="multipart body without a boundary")
    fields: dict[str, Any] = {}
    state: dict[str, Any] = {
        "name": None,
        "header": b"",
        "headers": {},
        "value": bytearray(),
        "file": False,
    }

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        key = state["header"].lower()
        state["headers"][key] = state["headers"].get(key, b"") + data[start:end]

    def on_header_end() -> None:
        state["header"] = b""

    def on_headers_finished() -> None:
        disposition = state["headers"].get(b"content-disposition", b"")
        _, opts = parse_options_header(disposition)
        name = opts.get(b"name", b"").decode()
        state["name"] = name
        state["file"] = name == "file"
        if state["file"] and opts.get(b"filename"):
            fields["\0filename"] = opts[b"filename"].decode("utf-8", "replace")
        if state["file"] and state.get("got_file"):
            raise HTTPException(status_code=400, detail="more than one field named 'file'")
        if state["file"]:
            state["got_file"] = True  # an empty file is still the form's file (and refused as empty)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if state["file"]:
            out.write(piece)
        else:
            state["value"] += piece
            if len(state["value"]) > MAX_FIELD_BYTES:
                raise HTTPException(status_code=400, detail=f"form field {state['name']!r} is too long")

    def on_part_end() -> None:
        if not state["file"] and state["name"]:
            fields[state["name"]] = state["value"].decode("utf-8", "replace")
        state.update(name=None, headers={}, value=bytearray(), file=False)

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    async for chunk in request.stream():
        limit.add(len(chunk))
        parser.write(chunk)
        await out.flush()
    parser.finalize()
    if not state.get("got_file"):
        raise HTTPException(status_code=400, detail="the form has no field named 'file' with a backup")
    return fields


def read_body_options(path: Path, *, limits: ReadLimits | None = None) -> dict[str, Any]:
    """The `"options"` of a `{"backupData": ..., "options": ...}` body, if it is one."""
    limits = limits or ReadLimits()
    try:
        stream, _ = open_stream(path, limits=limits)
        with stream:
            head = stream.read(4096).lstrip()
        if not head.startswith(b"{") or b'"backupData"' not in head:
            return {}
        stream, _ = open_stream(path, limits=limits)
        with stream:
            options = find_key(stream, path.name, "options", max_value=limits.max_line_bytes)
    except Exception:  # a malformed body (or a bomb) is reported by the validation pass, not here
        return {}
    return dict(options) if isinstance(options, dict) else {}
