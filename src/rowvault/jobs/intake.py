"""Taking in a restore: the database reserved before the upload is read, the upload scanned
and checked against the database, the job recorded and queued.

A face receives the bytes (the web face streams a request body to disk) and calls these, in
this order, each blocking (state store, file, broker): `reserve`, then `accept` on the file
received, then `queue`; `release` if anything fails before the job is recorded. Errors are
`JobError`s with their HTTP status, or the engine's own (a bad file, a file that does not fit
the database).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from ..file.limits import ReadLimits
from ..file.reader import BackupFile, FileSummary
from ..options import MODES, RestoreOptions
from ..restore import validate
from ..settings import Settings
from .model import Job, new_job_id
from .runner import STALE_AFTER_SECONDS, Busy, JobError
from .service import Service

OPTION_FLAGS = ("dryRun", "skipUnknown", "confirmReplace", "snapshot")


def read_limits(settings: Settings) -> ReadLimits:
    """What scanning an upload may cost: the engine's line cap, and the settings' caps on
    decompression (ROWVAULT_MAX_EXPANDED_MB, ROWVAULT_MAX_RATIO)."""
    return ReadLimits(max_expanded_bytes=settings.max_expanded_mb << 20, max_ratio=settings.max_ratio)


def flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def restore_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """Options from a request's body, form or query, checked; camelCase as the API speaks.
    An option that is wrong is a 400 now, not a failed job later."""
    options: dict[str, Any] = {}
    if given.get("batchSize") not in (None, "", "auto"):
        try:
            options["batchSize"] = int(given["batchSize"])
        except (TypeError, ValueError):
            raise JobError("batchSize must be a whole number") from None
    if given.get("mode") not in (None, ""):
        if given["mode"] not in MODES:
            raise JobError(f"mode must be one of {', '.join(MODES)}")
        options["mode"] = given["mode"]
    for key in OPTION_FLAGS:
        if given.get(key) not in (None, ""):
            options[key] = flag(given[key])
    if given.get("confirm") not in (None, ""):
        options["confirmReplace"] = flag(given["confirm"])
    RestoreOptions(  # raises OptionError / ConfirmationRequired
        mode=options.get("mode", "upsert"),
        batch_size=options.get("batchSize"),
        dry_run=options.get("dryRun", False),
        confirm_replace=options.get("confirmReplace", False),
    )
    return options


class RestoreIntake:
    """One restore's way in, from before its upload is read to its job in the queue."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.runner = service.runner
        self.job_id = new_job_id()
        self.limits = read_limits(service.settings)
        self.upload_path = service.settings.uploads / f"{self.job_id}.upload"
        """Where the face writes the upload (named after the job: nothing sent names a path)."""

    def reserve(self) -> None:
        """Take the database's lock for this restore, before any byte is received: a busy
        database (Busy, 409) costs the client nothing more than its request."""
        holder = self.runner.store.try_lock(self.runner.key, self.job_id, stale_after=STALE_AFTER_SECONDS)
        if holder is not None:
            raise Busy(holder)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the lock fresh while the upload is received (a thread; cheap to enter)."""
        with self.runner.store.keep_fresh(self.runner.key, self.job_id):
            yield

    def release(self) -> None:
        """Free the database and remove the upload: nothing was recorded."""
        self.upload_path.unlink(missing_ok=True)
        self.runner.store.unlock(self.runner.key, self.job_id)

    def accept(
        self, filename: str, given: Mapping[str, Any], *, scan: bool = True
    ) -> tuple[Job, FileSummary | None]:
        """Check the options and the upload, then record the job. With `scan`, the file is
        read through now (a bad file or one that does not fit the database raises, and no
        job is recorded); without, that is the job's first stage, `reading`."""
        options = restore_options(given)
        if filename != "upload":
            options["fileName"] = filename
        summary = None
        if scan:
            file = BackupFile(self.upload_path, name=filename, limits=self.limits)
            summary = file.scan()
            check = RestoreOptions(
                mode=options.get("mode", "upsert"),
                dry_run=True,
                skip_unknown=options.get("skipUnknown", False),
            )
            validate(self.runner.database.engine, self.upload_path, options=check, summary=summary)
        job = self.runner.create_restore(self.upload_path, options, job_id=self.job_id)
        return job, summary

    def queue(self, job: Job, summary: FileSummary | None) -> Future[Job] | None:
        return self.service.submit(job, summary)
