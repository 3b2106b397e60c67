"""Jobs on Celery workers (DESIGN.md §2): restores for more than one machine.

The job itself does not change. The server records it in the state store as in every mode,
then sends only its id to a Celery queue named after the target database. `rowvault worker
--celery` consumes that queue and runs the job with the same JobRunner, so progress,
checkpoints, cancel, resume and the `interrupted` heartbeat work exactly as with the
server's own worker processes. The state store stays the truth: a message delivered twice,
or for a job cancelled while it waited, finds the job no longer queued and does nothing.
A worker that dies mid-job (its heartbeat stops) is noticed by the others' sweep, and by the
API when a job is looked at: the job goes back on the queue and resumes from its checkpoint.

What the machines share: the state store (ROWVAULT_STATE_URL, PostgreSQL), the broker
(ROWVAULT_BROKER_URL, Redis) and ROWVAULT_HOME, where uploaded backups wait for their job.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from ..errors import OptionError, RowvaultError

try:
    from celery import Celery
    from kombu.exceptions import OperationalError
    from kombu.utils.url import maybe_sanitize_url
except ImportError:  # an optional extra
    raise OptionError(
        "jobs on Celery (ROWVAULT_JOBS=celery, `rowvault worker --celery`) need Celery: "
        "pip install 'rowvault[celery]'"
    ) from None
from .model import this_process
from .runner import STALE_AFTER_SECONDS, JobRunner, new_runner, owner_gone
from .store import StateStore

log = logging.getLogger("rowvault.jobs")
TASK = "rowvault.run_job"
PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


class QueueUnavailable(RowvaultError):
    """The broker did not take the job."""


def queue_name(target_key: str) -> str:
    """One queue per target database, so a worker only gets jobs for the database it reaches."""
    return "rowvault." + hashlib.sha256(target_key.encode()).hexdigest()[:16]


def make_app(broker_url: str) -> Celery:
    app = Celery("rowvault", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # results live in the state store
        task_acks_late=True,  # a message is gone only once its job has run
        worker_prefetch_multiplier=1,  # a busy worker does not sit on the next job
        broker_connection_retry_on_startup=True,
    )
    app.task(name=TASK, ignore_result=True)(run_job)
    return app


def send(app: Celery, job_id: str, target_key: str) -> None:
    """Queue `job_id` for the workers of its database; QueueUnavailable if the broker is down."""
    try:
        app.send_task(
            TASK, args=[job_id], queue=queue_name(target_key), retry=True, retry_policy=PUBLISH_RETRY
        )
    except (OperationalError, OSError) as exc:
        raise QueueUnavailable(f"the job queue ({_safe(app)}) did not answer: {exc}") from None


def _safe(app: Celery) -> str:
    return masked_broker_url(str(app.conf.broker_url))


def masked_broker_url(url: str) -> str:
    """The broker URL with its password hidden, by kombu's sanitizer - also for a list of
    URLs joined by ';' (failover, Sentinel), which the sanitizer alone cannot read."""
    try:
        return ";".join(str(maybe_sanitize_url(part)) for part in url.split(";"))
    except ValueError:
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://***" if sep else "***"


# -- in the worker ---------------------------------------------------------------------------

_settings: Any = None  # set by work() before the pool forks; the children inherit it
_runner: JobRunner | None = None


def _worker_runner() -> JobRunner:
    """The runner of this worker process, made on its first job (after the fork)."""
    global _runner
    if _runner is None:
        if _settings is None:
            raise RowvaultError("this process was not started by `rowvault worker --celery`")
        _runner = new_runner(_settings, freeze_heap=True)  # a worker process of rowvault's own
    return _runner


def run_job(job_id: str) -> str:
    """The task: take the job if it is still queued, and run it to its end."""
    runner = _worker_runner()
    job = runner.store.get(job_id)
    if job is None:
        log.warning("[worker] job %s is not in the state store; dropped", job_id)
        return "missing"
    if job.target_key != runner.key:
        log.error("[worker] job %s is for %s; this worker serves %s", job_id, job.target, runner.target)
        return "wrong-target"
    if not runner.store.claim_job(job_id, this_process()):
        log.info("[worker] job %s is %s, not queued; nothing to do", job_id, job.status)
        return job.status
    return runner.run(job_id, claimed=True).status


REQUEUE_LIMIT = 3
"""Times a job whose worker died is queued again by itself before it waits for a person."""
SWEEP_SECONDS = 2.0


def requeue_gone(app: Celery, store: StateStore, target_key: str | None = None) -> list[str]:
    """Jobs whose worker died (its heartbeat stopped, or its process is gone from this host)
    go back on the queue, to resume from their checkpoint on a live worker."""
    dead = {job.owner for job in store.active() if job.owner and owner_gone(job.owner)}
    requeued, _ = store.requeue_stale(
        target_key, stale_after=STALE_AFTER_SECONDS, dead_owners=dead, limit=REQUEUE_LIMIT
    )
    for job_id in requeued:
        job = store.get(job_id)
        if job is not None:
            send(app, job.id, job.target_key)
    return requeued


def _sweep(app: Celery, settings: Any, target_key: str, stop: threading.Event) -> None:
    """In the worker's main process: every few seconds, requeue the jobs of dead workers."""
    store = StateStore(settings.state_database)
    try:
        while not stop.wait(SWEEP_SECONDS):
            try:
                requeue_gone(app, store, target_key)
            except Exception:  # the store or the broker is down for a moment: next round
                log.exception("[worker] looking for the jobs of dead workers failed")
    finally:
        store.close()


def work(settings: Any) -> None:
    """`rowvault worker --celery`: consume the queue of `settings.database_url` until stopped."""
    global _settings
    _settings = settings
    probe = new_runner(settings)  # fails here, with a clear message, if the database is unreachable
    queue, target = queue_name(probe.key), probe.target
    probe.close()
    probe.store.close()
    app = make_app(settings.broker_url)
    log.info(
        "[worker] Celery worker for %s on queue %s of %s",
        target,
        queue,
        masked_broker_url(settings.broker_url),
    )
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep, args=(app, settings, probe.key, stop), name="rowvault-sweep", daemon=True
    )
    sweeper.start()
    try:
        app.worker_main(
            ["worker", "--queues", queue, "--concurrency", str(settings.workers), "--loglevel", "INFO"]
        )
    finally:
        stop.set()
