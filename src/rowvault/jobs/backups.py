"""Backup jobs: a backup with an id and its own progress record, like a restore.

The web page starts a backup as a job so it can follow it over the same routes and events
as a restore, and then download the file. The file is written under ROWVAULT_HOME/backups,
named after the job (`<id>.json.gz`): nothing a request sends ever becomes part of a path.
A backup takes no lock (it reads in one snapshot) and is not resumed: a stopped one is
started again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..backup import backup, check_options
from ..database import DatabaseLike, opened
from ..errors import OptionError, RowvaultError
from ..load.pending import PENDING_TABLE
from ..options import BackupOptions
from ..progress import Progress, ProgressCallback
from .model import Job, new_job_id, this_process
from .store import StateStore

log = logging.getLogger("rowvault.jobs")
FOLDER = "backups"
WRITES_PER_SECOND = 4
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


class _Stopped(Exception):
    """Raised from the progress callback to stop a backup between batches."""


def job_options(db: DatabaseLike, given: Mapping[str, Any]) -> dict[str, Any]:
    """A backup job's options from a request, checked now (names the database lacks, limits
    that are not whole numbers: OptionError), camelCase as the API speaks."""
    tables = given.get("tables")
    options: dict[str, Any] = {
        "tables": [str(t) for t in tables] if tables is not None else None,
        "exclude": [str(t) for t in given.get("exclude") or []],
        "limits": {str(t): n for t, n in (given.get("limits") or {}).items()},
        "includeDemoData": bool(given.get("includeDemoData", True)),
        "gzip": bool(given.get("gzip", True)),
    }
    check_options(db, backup_options(options))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    options["fileName"] = f"rowvault-backup-{stamp}.json" + (".gz" if options["gzip"] else "")
    return options


def backup_options(options: Mapping[str, Any]) -> BackupOptions:
    limits = options.get("limits") or {}
    for table, n in limits.items():
        if type(n) is not int:
            raise OptionError(f"limit for table {table!r} must be a whole number >= 0")
    return BackupOptions(
        tables=options.get("tables"),
        exclude=options.get("exclude") or (),
        limits=limits,
        include_demo_data=bool(options.get("includeDemoData", True)),
        compress=bool(options.get("gzip", True)),
    )


def database_tables(db: DatabaseLike) -> list[dict[str, Any]]:
    """The tables a backup can hold, each with its demo-data column if it has one (the
    column `--no-demo-data` filters on): what the page's Backup tab offers."""
    demo = BackupOptions().demo_column
    with opened(db, must_exist=True) as database:
        inspector = sa.inspect(database.engine)
        names = sorted(str(n) for n in inspector.get_table_names() if n != PENDING_TABLE)
        tables = []
        for name in names:
            columns = {str(c["name"]) for c in inspector.get_columns(name)}
            tables.append({"name": name, "demoColumn": demo if demo in columns else None})
    return tables


def new_backup_job(target: str, key: str, options: dict[str, Any]) -> Job:
    job = Job(
        id=new_job_id(),
        kind="backup",
        target=target,
        target_key=key,
        options=options,
        owner=this_process(),
    )
    job.progress = Progress().to_dict()
    return job


def output_path(home: Path, job: Job) -> Path:
    """Where job `job`'s file is: ROWVAULT_HOME/backups/<id>.json[.gz], from the job's id."""
    if not _JOB_ID.match(job.id):
        raise OptionError(f"job id {job.id!r} cannot name a file")
    suffix = ".json.gz" if job.options.get("gzip", True) else ".json"
    return Path(home) / FOLDER / f"{job.id}{suffix}"


class Stopping:
    """Whether the backup should stop: cancelled here or from another process (the store's
    flag, looked at once a second), or the worker is stopping."""

    def __init__(
        self, store: StateStore, job_id: str, cancel: threading.Event, stop: threading.Event
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.cancel = cancel
        self.stop = stop
        self.last_look = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.cancel.is_set() and now - self.last_look > 1.0:
            self.last_look = now
            if self.store.cancel_requested(self.job_id):
                self.cancel.set()
        return self.cancel.is_set() or self.stop.is_set()


class _Reporter:
    """The backup's progress into the store a few times a second; the finished record is
    saved with the job's final status, in one write."""

    def __init__(
        self, store: StateStore, job: Job, stopping: Stopping, extra: ProgressCallback | None
    ) -> None:
        self.store = store
        self.job = job
        self.stopping = stopping
        self.extra = extra
        self.last_write = float("-inf")
        self.last: Progress | None = None
        self.table: str | None = None
        """The table being written when the backup last reported running."""

    def __call__(self, progress: Progress, /) -> None:
        self.last = progress
        if self.extra is not None:
            self.extra(progress)
        if progress.finished:
            return
        self.table = progress.model
        now = time.monotonic()
        if now - self.last_write >= 1.0 / WRITES_PER_SECOND:
            self.last_write = now
            self.store.update(self.job.id, progress=progress.to_dict(), heartbeat_at=time.time())
        if self.stopping():
            raise _Stopped


def run_backup_job(
    store: StateStore,
    database: DatabaseLike,
    home: Path,
    job: Job,
    stopping: Stopping,
    progress: ProgressCallback | None = None,
) -> Job:
    """Write job `job`'s backup to its file; the job ends completed, cancelled, interrupted
    or in error, in the store, whatever happened."""
    reporter = _Reporter(store, job, stopping, progress)
    target = output_path(home, job)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("[backup] job %s started: %s -> %s", job.id, job.target, target.name)
    try:
        result = backup(database, target, options=backup_options(job.options), progress=reporter)
    except BaseException as exc:  # the job must end in the store whatever happened
        _fail(store, job, reporter, exc, stopping)
        if not isinstance(exc, Exception):
            raise
        return job
    job.result = {**result.to_dict(), "path": target.name, "fileBytes": target.stat().st_size}
    job.progress = reporter.last.to_dict() if reporter.last else job.progress
    job.finish("completed")
    store.save(job)
    log.info("[backup] job %s completed: %d records, %d bytes", job.id, result.total, target.stat().st_size)
    return job


def _fail(store: StateStore, job: Job, reporter: _Reporter, exc: BaseException, stopping: Stopping) -> None:
    if isinstance(exc, _Stopped):
        status = "interrupted" if stopping.stop.is_set() and not stopping.cancel.is_set() else "cancelled"
        message = None if status == "cancelled" else "the worker was stopped; start the backup again"
    elif isinstance(exc, RowvaultError):
        status, message = "error", str(exc)
    else:
        log.exception("[backup] job %s failed", job.id)
        status, message = "error", f"internal error: {type(exc).__name__}: {exc}"
    if reporter.last is not None:
        job.progress = {**reporter.last.to_dict(), "status": status}
        if status != "error":
            job.progress["model"] = reporter.table
    job.finish(status, error=message)  # type: ignore[arg-type]
    try:
        store.save(job)
    except Exception as failed:  # it shows interrupted once its heartbeat is old
        log.warning("[backup] job %s: could not record that it ended: %s", job.id, failed)
    log.info("[backup] job %s %s%s", job.id, status, f": {message}" if message else "")
