"""The job service behind the HTTP face: the runner, and where its jobs run (this process's
threads, worker processes, or Celery workers).

Every method is blocking (state store queries, a broker publish): the web face calls them
through its thread pool. Errors are `JobError`s with the HTTP status they mean; nothing here
knows of HTTP.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any

from ..errors import RowvaultError
from ..file.reader import FileSummary
from ..settings import Settings
from .model import Job
from .runner import STALE_AFTER_SECONDS, JobError, JobRunner, owner_gone
from .worker import WorkerPool

log = logging.getLogger("rowvault.jobs")


class Service:
    """What the routes share: settings and the job runner (started by the app's lifespan)."""

    def __init__(self, settings: Settings, runner: JobRunner | None = None) -> None:
        self.settings = settings
        self._runner = runner
        self._workers: WorkerPool | None = None
        self._queue: Any = None  # the Celery app, when jobs run on Celery workers

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            raise JobError("the service is starting or stopping", status=503)
        return self._runner

    def start(self) -> None:
        if self._runner is None:
            from . import new_runner

            if not self.settings.database_url:
                raise RowvaultError("no database: set DATABASE_URL or pass --db")
            self._runner = new_runner(self.settings)
        if self.settings.jobs == "celery":
            from .celery_queue import make_app

            self._queue = make_app(self.settings.broker_url)
            self.recover_stale()
            return
        self._runner.recover()
        if self.settings.jobs == "process":
            self._workers = WorkerPool(self.settings, self._runner, self.settings.workers)
            self._workers.start()

    def recover_stale(self) -> None:
        """Jobs whose process is gone: on Celery they go back on the queue to resume on a
        live worker; run here, they show `interrupted` (resume is a person's call)."""
        if self._queue is None:
            self.runner.recover()
            return
        from .celery_queue import requeue_gone

        try:
            requeue_gone(self._queue, self.runner.store)
        except Exception:  # the broker is down: the workers' own sweep will do it
            log.exception("[service] queueing again the jobs of dead workers failed")

    def stop(self) -> None:
        if self._workers is not None:
            self._workers.stop()
            self._workers = None
        if self._runner is not None:
            self._runner.close()
            self._runner.store.close()
            self._runner = None

    def job(self, job_id: str) -> Job:
        """The job as the store holds it (404 if there is none); a running job whose process
        is gone is first marked so (or queued again)."""
        store = self.runner.store
        job = store.get(job_id)
        if job is None:
            raise JobError(f"no job with id {job_id!r}", status=404)
        stale = job.status == "running" and (
            (job.heartbeat_at or 0) < time.time() - STALE_AFTER_SECONDS
            or (job.owner is not None and owner_gone(job.owner))
        )
        if stale:  # its process is gone
            self.recover_stale()
            job = store.get(job_id) or job
        return job

    def submit(self, job: Job, summary: FileSummary | None = None) -> Future[Job] | None:
        """Queue `job`: for the worker processes, Celery, or this process's thread pool (then
        the future of its end)."""
        if self._workers is None and self._queue is None:
            return self.runner.submit(job, summary=summary)
        if summary is not None:
            self.runner.save_summary(job, summary)
        if self._workers is not None:
            self._workers.notify()
        else:
            self._send(job)
        return None

    def _send(self, job: Job) -> None:
        from .celery_queue import QueueUnavailable, send

        try:
            send(self._queue, job.id, job.target_key)
        except QueueUnavailable as exc:
            self.runner.abandon(job.id, str(exc))
            raise JobError(str(exc), status=503) from None
