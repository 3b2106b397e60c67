"""Run jobs: on a thread pool in this process (the HTTP service), or inline (the CLI).

Whatever runs a job writes what it does to the state store: progress and checkpoint at most
four times a second (each write is one UPDATE), every error message, a heartbeat every two
seconds. A job whose heartbeat stops is shown as `interrupted` and can be resumed from its
checkpoint; replaying the last batch is harmless because restores upsert.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson

from ..database import DatabaseLike, open_database
from ..dberrors import translate
from ..errors import BackupFileError, DatabaseError, DiskFull, RestoreAborted, RowvaultError, ValidationError
from ..file.format import FORMAT, FORMAT_VERSION
from ..file.limits import ReadLimits
from ..file.reader import BackupFile, FileSummary
from ..file.writer import BackupWriter
from ..heap import frozen_heap
from ..options import RestoreOptions
from ..progress import Phase, Progress, ProgressCallback
from ..restore import Resume, restore
from ..results import RestoreResult
from . import backups
from .model import Job, TransitionError, new_job_id, this_process
from .reading import read_file
from .snapshot import take_snapshot
from .store import StateStore
from .undo import by_key, empty_tables, undo_after, undo_before

log = logging.getLogger("rowvault.jobs")
HEARTBEAT_SECONDS = 2.0
STALE_AFTER_SECONDS = 15.0
PROGRESS_WRITES_PER_SECOND = 4
LOG_EVERY_SECONDS = 5.0


class JobError(RowvaultError):
    """A job cannot be started, cancelled or resumed; `status` is the HTTP status to use."""

    def __init__(self, message: str, *, status: int = 400, job_id: str | None = None) -> None:
        self.status = status
        self.job_id = job_id
        super().__init__(message)


class Busy(JobError):
    """Another restore is running on the same database."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            f"another restore (job {holder}) is running on this database; wait for it or cancel it",
            status=409,
            job_id=holder,
        )


def target_key(url: str) -> str:
    return url.lower()


class _Reporter:
    """Turns the engine's callbacks into throttled writes to the store."""

    def __init__(self, store: StateStore, job: Job, extra: ProgressCallback | None) -> None:
        self.store = store
        self.job = job
        self.extra = extra
        self.interval = 1.0 / PROGRESS_WRITES_PER_SECOND
        self.done: dict[str, int] = dict(job.checkpoint.get("done") or {})
        self.created: list[str] = list(job.checkpoint.get("created") or [])
        self.snapshot: dict[str, Any] | None = job.checkpoint.get("snapshot")
        self.pending: list[str] = []
        self.seq = store.error_count(job.id)
        self.last_write = 0.0
        self.last_log = time.monotonic()
        self.last: Progress | None = None
        self.retrying: dict[str, Any] | None = None
        self.phase: str | None = None
        self.writes = 0
        self.write_seconds = 0.0

    def progress(self, progress: Progress, /) -> None:
        self.last = progress
        now = time.monotonic()
        retrying, self.retrying = self.retrying, progress.retrying
        phase, self.phase = self.phase, progress.phase.name if progress.phase else None
        changed = retrying != progress.retrying or phase != self.phase
        if progress.finished or changed or now - self.last_write >= self.interval:
            self.flush()
            self.last_write = now
        if now - self.last_log >= LOG_EVERY_SECONDS and progress.status == "running":
            self.last_log = now
            rate = progress.rate
            log.info(
                "[restore] job %s: %s, %d/%d records%s, %d errors",
                self.job.id,
                progress.model,
                progress.processed,
                progress.total,
                f", {rate:,.0f}/s" if rate else "",
                progress.error_count,
            )
        if self.extra is not None:
            self.extra(progress)

    def checkpoint(self, table: str, done: int) -> None:
        """After every committed batch, in the store before the next batch commits: a resumed
        run redoes one batch at most."""
        self.done[table] = done
        with self._store_errors():
            self.store.update(self.job.id, checkpoint=self.state(), heartbeat_at=time.time())

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """The state store's failures as the store's, named so: never taken for the target's."""
        try:
            yield
        except RowvaultError:
            raise
        except Exception as exc:
            raise store_failed(self.store, exc) from exc

    def tables_created(self, names: list[str]) -> None:
        self.created = sorted(set(self.created) | set(names))
        self.flush()

    def state(self) -> dict[str, Any]:
        return {"done": self.done, "created": self.created, "snapshot": self.snapshot}

    def error(self, message: str) -> None:
        self.pending.append(message)

    def flush(self) -> None:
        """Write the checkpoint, the heartbeat, the progress and new errors.

        A finished progress record is held back: it is saved with the job's final status in
        one write, so no reader ever sees `model: completed` on a job that is still running.
        """
        started = time.perf_counter()
        fields: dict[str, Any] = {"checkpoint": self.state(), "heartbeat_at": time.time()}
        if self.last is not None and not self.last.finished:
            fields["progress"] = self.last.to_dict()
        with self._store_errors():
            self.store.update(self.job.id, **fields)
            if self.pending:
                self.store.add_errors(self.job.id, self.seq, self.pending)
                self.seq += len(self.pending)
                self.pending = []
        self.writes += 1
        self.write_seconds += time.perf_counter() - started


class _SnapshotProgress:
    """The safety snapshot as the job's stage `snapshot`: rows saved of the rows to save,
    written to the store a few times a second."""

    def __init__(self, store: StateStore, job: Job) -> None:
        self.store = store
        self.job = job
        self.last_write = float("-inf")

    def __call__(self, backup: Progress, /) -> None:
        now = time.monotonic()
        if now - self.last_write < 1.0 / PROGRESS_WRITES_PER_SECOND and not backup.finished:
            return
        self.last_write = now
        phase = Phase("snapshot", backup.processed, backup.total or None)
        record = {**self.job.progress, "model": "snapshot", "status": "running", "phase": phase.to_dict()}
        self.store.update(self.job.id, progress=record, heartbeat_at=time.time())


class JobRunner:
    """Creates, runs, cancels and resumes restore jobs against one database."""

    def __init__(
        self,
        store: StateStore,
        database: DatabaseLike,
        home: Path,
        *,
        workers: int = 2,
        batch_size: int | None = None,
        batch_delay_ms: int = 0,
        jobs: int = 2,
        retries: int = 5,
        freeze_heap: bool = False,
        upload_limits: ReadLimits | None = None,
    ) -> None:
        """`freeze_heap`: keep the collector off the objects that existed before each job
        (see `heap`) - for a process of rowvault's own, never inside a host application.
        `upload_limits`: what reading an uploaded file may cost (the service's caps on
        decompression), when a job is the first to read it."""
        self.store = store
        self.upload_limits = upload_limits
        self.freeze_heap = freeze_heap
        self.database = open_database(database)
        self.target = self.database.display_url
        self.key = target_key(self.target)
        self.home = Path(home)
        (self.home / "uploads").mkdir(parents=True, exist_ok=True)
        (self.home / "jobs").mkdir(parents=True, exist_ok=True)
        (self.home / backups.FOLDER).mkdir(parents=True, exist_ok=True)
        self.batch_size = batch_size
        self.batch_delay_ms = batch_delay_ms
        self.jobs = jobs
        self.retries = retries
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rowvault-job")
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="rowvault-heartbeat", daemon=True)
        self._beat.start()

    def stop(self) -> None:
        """Stop running jobs after their current batch (they end `interrupted`)."""
        self._stop.set()
        for event in list(self._running.values()):
            event.set()

    def request_stop(self, job_id: str) -> None:
        """Ask a job running in this process to stop after its current batch (it ends
        `cancelled`). Safe from a signal handler: it only sets an event."""
        event = self._running.get(job_id)
        if event is not None:
            event.set()

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)
        self.database.close()

    # -- creating --------------------------------------------------------------------------

    def create_restore(self, source: Path, options: dict[str, Any], *, job_id: str | None = None) -> Job:
        """Record a queued restore job and take the database's lock (Busy if it is taken).
        The HTTP service takes the lock for `job_id` before it receives the upload: a lock
        already held by `job_id` is the job's own, and taking it again keeps it."""
        job = Job(
            id=job_id or new_job_id(),
            kind="restore",
            target=self.target,
            target_key=self.key,
            source=str(source),
            options=options,
            owner=this_process(),
        )
        job.progress = Progress().to_dict()
        self.store.add(job)
        holder = self.store.try_lock(self.key, job.id, stale_after=STALE_AFTER_SECONDS)
        if holder is not None:
            job.finish("error", error=f"not started: job {holder} was running on the same database")
            self.store.save(job)
            raise Busy(holder)
        return job

    def submit(self, job: Job, *, summary: FileSummary | None = None) -> Future[Job]:
        return self._pool.submit(self.run, job.id, summary=summary)

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        job_id: str,
        *,
        progress: ProgressCallback | None = None,
        summary: FileSummary | None = None,
        claimed: bool = False,
    ) -> Job:
        """Run a queued job (or one this process has `claimed`) to its end in this thread;
        returns the finished job."""
        job = self._get(job_id)
        if job.target_key != self.key:
            raise JobError(f"job {job_id} restores into {job.target}, not {self.target}")
        if job.kind == "backup":
            return self._run_backup(job, progress, claimed)
        if not claimed:
            job.start()
            self.store.save(job)
        summary = summary or self._saved_summary(job)
        cancel = threading.Event()
        with self._lock:
            self._running[job.id] = cancel
        reporter = _Reporter(self.store, job, progress)
        log.info("[restore] job %s started: %s -> %s", job.id, job.source, job.target)
        try:
            self._restore(job, reporter, cancel, summary)
        except BaseException as exc:  # the job must end in the store whatever happened
            self._fail(job, reporter, exc)
            if not isinstance(exc, (RowvaultError, Exception)):
                raise
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            try:
                self.store.unlock(self.key, job.id)
            except Exception as exc:  # a lock whose job is not running is taken over anyway
                log.warning(
                    "[restore] job %s: could not free its lock: %s", job.id, store_failed(self.store, exc)
                )
        log.info("[restore] job %s %s", job.id, job.status)
        return job

    def _restore(
        self, job: Job, reporter: _Reporter, cancel: threading.Event, summary: FileSummary | None
    ) -> None:
        options = self._options(job)
        if summary is None:  # the validation pass, shown as the job's first stage
            summary = self._read(job, reporter)
        last_look = [0.0]

        def should_stop() -> bool:
            now = time.monotonic()
            if not cancel.is_set() and now - last_look[0] > 1.0:  # a cancel from another process
                last_look[0] = now
                if self.store.cancel_requested(job.id):
                    cancel.set()
            return cancel.is_set() or self._stop.is_set()

        engine = self.database.engine
        if job.options.get("snapshot") and not options.dry_run and reporter.snapshot is None:
            if summary is None:  # read the file once, for the snapshot's plan and the restore
                summary = BackupFile(Path(str(job.source))).scan()
            target = self.home / "jobs" / job.id / "snapshot.json.gz"
            shown = _SnapshotProgress(self.store, job)
            shown(Progress())
            reporter.snapshot = take_snapshot(engine, Path(str(job.source)), summary, options, target, shown)
            reporter.flush()
        undone = self._undone_snapshot(job)
        if job.options.get("emptyTables"):  # undo: the tables the undone restore created
            empty_tables(engine, list(job.options["emptyTables"]))
        if undone is not None and by_key(undone) and not reporter.done:  # undo by key: see `undo`
            undo_before(engine, undone)
        with frozen_heap() if self.freeze_heap else nullcontext():
            result = self._run_restore(job, reporter, should_stop, summary, options)
        if undone is not None:
            result.warnings += undo_after(engine, undone)
        reporter.flush()
        log.info(
            "[restore] job %s: %d records in %.1fs, %d created, %d updated, %d unchanged, %d errors; "
            "%d progress writes took %.0f ms (%.1f%%)",
            job.id,
            result.processed,
            result.seconds,
            sum(t.created for t in result.tables.values()),
            sum(t.updated for t in result.tables.values()),
            sum(t.unchanged for t in result.tables.values()),
            result.error_count,
            reporter.writes,
            reporter.write_seconds * 1000,
            100 * reporter.write_seconds / max(result.seconds, 1e-9),
        )
        job.progress = reporter.last.to_dict() if reporter.last else job.progress
        job.result = result.to_dict()
        job.rejects_path = str(result.rejects_path) if result.rejects_path else None
        job.checkpoint = reporter.state()
        job.finish("completed")
        self.store.save(job)
        if job.source and Path(job.source).parent == self.home / "uploads":
            Path(job.source).unlink(missing_ok=True)  # done: nothing left to resume

    def _run_restore(
        self,
        job: Job,
        reporter: _Reporter,
        should_stop: Callable[[], bool],
        summary: FileSummary | None,
        options: RestoreOptions,
    ) -> RestoreResult:
        return restore(
            self.database.engine,
            Path(str(job.source)),
            options=options,
            progress=reporter.progress,
            should_stop=should_stop,
            on_checkpoint=reporter.checkpoint,
            on_error=reporter.error,
            on_created=reporter.tables_created,
            resume=Resume(reporter.done, reporter.created) if reporter.done else None,
            summary=summary,
        )

    def _read(self, job: Job, reporter: _Reporter) -> FileSummary:
        """Scan the job's file, reporting stage `reading`; an upload nobody checked yet is
        held to the service's caps on decompression."""
        source = Path(str(job.source))
        upload = source.parent == self.home / "uploads"
        limits = self.upload_limits if upload else None
        # the file as its user named it: an upload's name, a local file's path
        name = (job.options.get("fileName") or "upload") if upload else str(source)
        file = BackupFile(source, name=name, limits=limits)
        return read_file(file, reporter.progress)

    def _saved_summary(self, job: Job) -> FileSummary | None:
        """The validation pass the API ran before queueing the job, if it left one."""
        path = self.home / "jobs" / job.id / "summary.json"
        if not path.exists():
            return None
        try:
            return FileSummary.from_dict(orjson.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # the restore checks the file again

    def save_summary(self, job: Job, summary: FileSummary) -> None:
        folder = self.home / "jobs" / job.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_bytes(orjson.dumps(summary.to_dict()))

    def _fail(self, job: Job, reporter: _Reporter, exc: BaseException) -> None:
        if isinstance(exc, RestoreAborted) and exc.cancelled and self._stop.is_set():
            status, message = "interrupted", "the worker was stopped; resume the job to finish it"
        elif isinstance(exc, RestoreAborted):
            status = "cancelled" if exc.cancelled else "error"
            message = "cancelled" if exc.cancelled else f"restore stopped: {exc.reason}"
            if exc.result is not None:
                job.result = exc.result.to_dict()
                job.rejects_path = str(exc.result.rejects_path) if exc.result.rejects_path else None
        elif isinstance(exc, (BackupFileError, ValidationError, RowvaultError)):
            status, message = "error", str(exc)
        else:
            log.exception("[restore] job %s failed", job.id)
            status, message = "error", f"internal error: {type(exc).__name__}: {exc}"
        try:
            reporter.flush()
        except Exception as failed:  # the store itself may be what failed; the job row is saved below
            log.warning("[restore] job %s: could not write its last progress: %s", job.id, failed)
        if reporter.last is not None:
            job.progress = reporter.last.to_dict()
        elif (fresh := self.store.get(job.id)) is not None:
            job.progress = fresh.progress
        job.checkpoint = reporter.state()
        job.finish(status, error=None if status == "cancelled" else message)  # type: ignore[arg-type]
        if status in ("cancelled", "interrupted"):
            job.progress = {**job.progress, "status": status}
        try:
            self.store.save(job)
        except Exception as failed:  # it shows interrupted once its heartbeat is old
            log.warning(
                "[restore] job %s: could not record that it ended: %s",
                job.id,
                store_failed(self.store, failed),
            )

    def _options(self, job: Job) -> RestoreOptions:
        given = dict(job.options)
        batch_size = given.get("batchSize") or self.batch_size
        rejects = Path(given.get("rejectsPath") or self.home / "jobs" / job.id / "rejects.json")
        return RestoreOptions(
            mode=given.get("mode", "upsert"),
            batch_size=int(batch_size) if batch_size else None,
            batch_delay_ms=int(given.get("batchDelayMs") or self.batch_delay_ms),
            jobs=int(given.get("jobs") or self.jobs),
            dry_run=bool(given.get("dryRun", False)),
            skip_unknown=bool(given.get("skipUnknown", False)),
            confirm_replace=bool(given.get("confirmReplace", False)),
            rejects_path=rejects,
            retries=self.retries,
        )

    def _get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise JobError(f"no job {job_id}", status=404)
        return job

    # -- cancelling and resuming -----------------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        job = self._get(job_id)
        if job.finished:
            raise JobError(f"job {job_id} is already {job.status}", status=409, job_id=job_id)
        self.store.update(job_id, cancel_requested=True)
        event = self._running.get(job_id)
        if event is not None:
            event.set()
        # not picked up yet: end it here, unless a worker takes it at this very moment (then
        # that worker sees the cancel before its first batch)
        if job.status == "queued" and event is None and self.store.end_queued(job_id, "cancelled"):
            self.store.unlock(job.target_key, job.id)
        return self._get(job_id)

    def abandon(self, job_id: str, reason: str) -> None:
        """A queued job that cannot be handed to a worker ends as an error with `reason`."""
        job = self._get(job_id)
        if self.store.end_queued(job_id, "error", reason):
            self.store.unlock(job.target_key, job.id)

    def create_undo(self, job_id: str) -> Job:
        """A restore job that puts back what job `job_id` changed, from its safety snapshot."""
        original = self._get(job_id)
        snapshot = original.checkpoint.get("snapshot")
        if not original.finished:
            raise JobError(f"job {job_id} is still {original.status}; cancel it first", status=409)
        if not snapshot or (not Path(snapshot["path"]).exists() and snapshot.get("tables")):
            raise JobError(f"job {job_id} has no safety snapshot to undo with", status=409)
        if original.options.get("undoneBy"):
            raise JobError(
                f"job {job_id} was already undone by job {original.options['undoneBy']}", status=409
            )
        created = sorted(set(snapshot.get("created") or []) | set(original.checkpoint.get("created") or []))
        options = {
            "mode": "upsert" if by_key(snapshot) else "replace",  # by key: see `undo`
            "confirmReplace": not by_key(snapshot),
            "undoOf": job_id,
            "emptyTables": created,
            "fileName": f"safety snapshot of job {job_id}",
        }
        source = Path(snapshot["path"])
        if not snapshot.get("tables"):  # nothing existed before: only the created tables to empty
            source = self._empty_backup(original)
        job = self.create_restore(source, options)
        self.store.update(original.id, options={**original.options, "undoneBy": job.id})
        return job

    def _undone_snapshot(self, job: Job) -> dict[str, Any] | None:
        """The safety snapshot of the restore this job undoes, if it is an undo."""
        undone = job.options.get("undoOf")
        original = self.store.get(str(undone)) if undone else None
        snapshot = original.checkpoint.get("snapshot") if original is not None else None
        return snapshot or None

    def _empty_backup(self, original: Job) -> Path:
        path = self.home / "jobs" / original.id / "snapshot-empty.json"
        writer = BackupWriter(path)
        writer.write_metadata({"format": FORMAT, "version": FORMAT_VERSION, "tables": {}})
        writer.close()
        return path

    def prepare_resume(self, job_id: str) -> Job:
        job = self._get(job_id)
        if job.kind == "backup":
            raise JobError(f"job {job_id} is a backup: start a new one instead", status=409, job_id=job_id)
        if job.target_key != self.key:
            raise JobError(f"job {job_id} restores into {job.target}, not {self.target}")
        if job.source is None or not Path(job.source).exists():
            raise JobError(f"job {job_id} cannot resume: its backup file is gone", status=409)
        try:
            job.requeue()
        except TransitionError as exc:
            raise JobError(str(exc), status=409, job_id=job_id) from None
        holder = self.store.try_lock(self.key, job.id, stale_after=STALE_AFTER_SECONDS)
        if holder is not None:
            raise Busy(holder)
        job.owner = this_process()
        self.store.save(job)
        return job

    # -- backups ---------------------------------------------------------------------------

    def create_backup(self, options: dict[str, Any]) -> Job:
        """Record a queued backup job (`backups.job_options` checked its options). A backup
        takes no lock: it reads in one snapshot, beside a restore if one is running."""
        job = backups.new_backup_job(self.target, self.key, options)
        self.store.add(job)
        return job

    def _run_backup(self, job: Job, progress: ProgressCallback | None, claimed: bool) -> Job:
        if not claimed:
            job.start()
            self.store.save(job)
        cancel = threading.Event()
        with self._lock:
            self._running[job.id] = cancel
        try:
            stopping = backups.Stopping(self.store, job.id, cancel, self._stop)
            return backups.run_backup_job(
                self.store, self.database.engine, self.home, job, stopping, progress
            )
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    # -- liveness --------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            now = time.time()
            for job_id in list(self._running):
                try:
                    self.store.update(job_id, heartbeat_at=now)
                except Exception as exc:
                    log.warning(
                        "[restore] heartbeat of job %s failed: %s", job_id, store_failed(self.store, exc)
                    )

    def recover(self) -> list[str]:
        """At start: jobs whose process is gone become `interrupted` (and free their lock)."""
        return interrupt_gone(self.store)


def store_failed(store: StateStore, exc: BaseException) -> RowvaultError:
    """A failure of the state store in words that name it (a full disk: the store's file)."""
    cause = translate(exc, url=store.display_url)
    url = store.engine.url
    if isinstance(cause, DiskFull) and url.get_backend_name() == "sqlite" and url.database:
        return DiskFull(cause.reason, path=str(Path(url.database).resolve()))
    reason = cause.args[0] if cause is not None else f"{type(exc).__name__}: {exc}"
    return DatabaseError(f"the job state store failed: {reason}")


def interrupt_gone(store: StateStore) -> list[str]:
    """Jobs whose process is gone (known at once for this host's processes, else from the
    heartbeat that stopped) become `interrupted` and free their lock; returns their ids."""
    dead = {job.owner for job in store.active() if job.owner and owner_gone(job.owner)}
    return store.interrupt_stale(stale_after=STALE_AFTER_SECONDS, dead_owners=dead)


def owner_gone(owner: str) -> bool:
    """Whether the process `host:pid` is known to be gone (only this host can tell)."""
    host, _, pid = owner.rpartition(":")
    if host != this_process().rpartition(":")[0] or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie (dead, not yet reaped) still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state == "Z"


def new_runner(
    settings: Any, database: DatabaseLike | None = None, *, freeze_heap: bool = False
) -> JobRunner:
    Path(settings.home).mkdir(parents=True, exist_ok=True)
    store = StateStore(settings.state_database)
    return JobRunner(
        store,
        database or settings.database_url,
        settings.home,
        workers=settings.workers,
        batch_size=settings.restore_batch_size,
        batch_delay_ms=settings.restore_batch_delay_ms,
        jobs=settings.restore_jobs,
        retries=settings.retries,
        freeze_heap=freeze_heap,
        upload_limits=ReadLimits(
            max_expanded_bytes=settings.max_expanded_mb << 20, max_ratio=settings.max_ratio
        ),
    )
