"""A job: one restore (or backup) with an id, its options, where it stands and how it ended.

Statuses are `Literal`s and change through small methods, one per transition, so the rules
(what can follow what) live in one place. The record carries a format version so stored jobs
can be read by later rowvault versions.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from ..progress import Progress

JobStatus = Literal["queued", "running", "completed", "error", "cancelled", "interrupted"]
JobKind = Literal["restore", "backup"]
FINISHED: frozenset[str] = frozenset({"completed", "error", "cancelled", "interrupted"})
RESUMABLE: frozenset[str] = frozenset({"error", "cancelled", "interrupted"})
STATE_VERSION = 1


def new_job_id() -> str:
    return uuid.uuid4().hex


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TransitionError(ValueError):
    """A job was asked to do what its status does not allow."""


@dataclass
class Job:
    id: str
    kind: JobKind
    target: str
    """The database, as shown to users (password hidden)."""
    target_key: str
    """What identifies the database for the one-restore-at-a-time rule."""
    source: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    status: JobStatus = "queued"
    progress: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    rejects_path: str | None = None
    owner: str | None = None
    cancel_requested: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    version: int = STATE_VERSION

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def resumable(self) -> bool:
        """Whether resuming can carry on: it stopped part-way (cancelled, interrupted), or it
        failed after writing something. A run refused before its first write (validation, a
        connection that failed) has nothing to carry on from: it is run again instead. A
        backup is never resumed: it is started again, in a new snapshot."""
        if self.kind == "backup":
            return False
        if self.status in ("cancelled", "interrupted"):
            return True
        return self.status == "error" and bool(self.checkpoint.get("done") or self.checkpoint.get("created"))

    # -- transitions -------------------------------------------------------------------------

    def start(self) -> None:
        if self.status != "queued":
            raise TransitionError(f"job {self.id} is {self.status}, not queued")
        self.status = "running"
        self.owner = this_process()
        self.started_at = self.heartbeat_at = time.time()
        self.cancel_requested = False

    def finish(self, status: JobStatus, *, error: str | None = None) -> None:
        if status not in FINISHED:
            raise TransitionError(f"{status} is not a final status")
        self.status = status
        self.error = error
        self.finished_at = time.time()

    def requeue(self) -> None:
        """Resume: run again from the checkpoint."""
        if self.status not in RESUMABLE:
            raise TransitionError(f"job {self.id} is {self.status}; only a job that stopped can resume")
        self.status = "queued"
        self.error = None
        self.finished_at = None

    def interrupt(self) -> None:
        """Its process is gone."""
        if self.status in ("queued", "running"):
            self.status = "interrupted"
            self.finished_at = time.time()

    # -- what the API shows ------------------------------------------------------------------

    def progress_record(self) -> dict[str, Any]:
        """DESIGN.md §3's progress object, kept in step with the job's status."""
        record = dict(self.progress) or Progress().to_dict()
        record["id"] = self.id
        record["status"] = self.status
        record["error"] = self.error  # why it stopped; `errors` only ever grows at its end
        if self.status == "error":
            record["model"] = "error"
            if self.error and self.error not in record.get("errors", []):
                record["errors"] = [*record.get("errors", []), self.error]
                record["errorCount"] = int(record.get("errorCount") or 0) + 1
        elif self.status == "completed":
            record["model"] = "completed"
        if self.status in ("queued", "running"):
            record["finishedAt"] = None
        return record
