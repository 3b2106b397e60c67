"""The state store: jobs, their progress, checkpoints, every error message, and the locks
that keep one restore per target database - in SQL tables, never only in memory, so any
process can answer for any job and a restart loses nothing.

Default: a SQLite file under ROWVAULT_HOME (WAL mode: the API reads while a job writes).
For several machines: PostgreSQL (ROWVAULT_STATE_URL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..database import normalize_url
from ..errors import DatabaseError
from .model import Job

log = logging.getLogger("rowvault.jobs")
metadata = sa.MetaData()
jobs = sa.Table(
    "rowvault_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("target_key", sa.String(255), nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("options", sa.Text, nullable=False),
    sa.Column("progress", sa.Text, nullable=False),
    sa.Column("checkpoint", sa.Text, nullable=False),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("rejects_path", sa.Text),
    sa.Column("owner", sa.String(255)),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("version", sa.Integer, nullable=False),
)
job_errors = sa.Table(
    "rowvault_job_errors",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("message", sa.Text, nullable=False),
)
RECEIVING_REFRESH_EVERY = 5.0
"""How often the holder of a job-less lock (an upload being received) refreshes it (s)."""
RECEIVING_STALE_AFTER = 60.0
"""A job-less lock not refreshed for this long (s) is taken over: its process is gone. Twelve
refreshes missed, so a busy state store never loses a live upload its lock."""
locks = sa.Table(
    "rowvault_locks",
    metadata,
    sa.Column("target_key", sa.String(255), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
)
_JSON_FIELDS = ("options", "progress", "checkpoint", "result")


def _dump(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _row_to_job(row: Any) -> Job:
    data = dict(row._mapping)
    for name in _JSON_FIELDS:
        raw = data.get(name)
        data[name] = orjson.loads(raw) if raw else ({} if name != "result" else None)
    return Job(**data)


def masked_url(url: str) -> str:
    """A SQL URL with its password hidden: what messages, logs and job records may show.

    One that does not parse is shown as its scheme only (its password may be anywhere in it)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://***" if sep else "***"


def _scrubbed(message: str, url: str) -> str:
    """`message` without the URL's password, should a driver ever quote it."""
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return message
    return message.replace(password, "***") if password else message


CREATE_ATTEMPTS = 5


def _create_tables(engine: Engine) -> None:
    """The store's tables, if missing. Processes that start at once against a new store race
    to create them; the one that loses finds them there on its next look."""
    for attempt in range(CREATE_ATTEMPTS):
        try:
            metadata.create_all(engine)
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


class StateStore:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.display_url = masked_url(self.url)
        try:
            self.engine: Engine = sa.create_engine(self.url, pool_pre_ping=True)
            if self.engine.dialect.name == "sqlite":
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
                folder = self.engine.url.database
                if folder and folder != ":memory:" and not folder.startswith("file:"):
                    Path(folder).parent.mkdir(parents=True, exist_ok=True)  # a new ROWVAULT_HOME
            _create_tables(self.engine)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise DatabaseError(
                f"the job state store cannot be used: {_scrubbed(reason, self.url)}",
                url=self.display_url,
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    # -- jobs ----------------------------------------------------------------------------------

    def add(self, job: Job) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs.insert().values(**self._columns(job)))

    def save(self, job: Job) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job.id).values(**self._columns(job)))

    def update(self, job_id: str, **fields: Any) -> None:
        values = {k: (_dump(v) if k in _JSON_FIELDS else v) for k, v in fields.items()}
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _row_to_job(row) if row is not None else None

    def recent(self, limit: int = 50) -> list[Job]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)).fetchall()
        return [_row_to_job(r) for r in rows]

    def active(self) -> list[Job]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs).where(jobs.c.status.in_(("queued", "running")))).fetchall()
        return [_row_to_job(r) for r in rows]

    def claim(self, target_key: str, owner: str) -> str | None:
        """Take the oldest queued job for the database, for `owner`; None if there is none.
        Safe with several workers: only one of them moves a job from queued to running."""
        while True:
            with self.engine.connect() as conn:
                candidate = conn.execute(
                    sa.select(jobs.c.id)
                    .where(jobs.c.status == "queued", jobs.c.target_key == target_key)
                    .where(jobs.c.cancel_requested.is_(False))
                    .order_by(jobs.c.created_at)
                    .limit(1)
                ).scalar()
            if candidate is None:
                return None
            if self.claim_job(str(candidate), owner):
                return str(candidate)

    def claim_job(self, job_id: str, owner: str) -> bool:
        """Move `job_id` from queued to running for `owner`; False if it is not queued (any
        more) or its cancel was asked for. Only one caller ever gets True."""
        now = time.time()
        with self.engine.begin() as conn:
            taken = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == "queued")
                .where(jobs.c.cancel_requested.is_(False))
                .values(status="running", owner=owner, started_at=now, heartbeat_at=now)
            )
        return taken.rowcount == 1

    def end_queued(self, job_id: str, status: str, error: str | None = None) -> bool:
        """End a job that no worker has taken yet; False if one took it meanwhile."""
        with self.engine.begin() as conn:
            ended = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == "queued")
                .values(status=status, error=error, finished_at=time.time())
            )
        return ended.rowcount == 1

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as conn:
            flag = conn.execute(sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
        return bool(flag)

    def _columns(self, job: Job) -> dict[str, Any]:
        data = {c.name: getattr(job, c.name) for c in jobs.columns}
        for name in _JSON_FIELDS:
            data[name] = _dump(data[name]) or ("{}" if name != "result" else None)
        return data

    # -- errors ----------------------------------------------------------------------------------

    def add_errors(self, job_id: str, first_seq: int, messages: Sequence[str]) -> None:
        if not messages:
            return
        with self.engine.begin() as conn:
            conn.execute(
                job_errors.insert(),
                [{"job_id": job_id, "seq": first_seq + i, "message": m} for i, m in enumerate(messages)],
            )

    def errors(self, job_id: str, *, offset: int = 0, limit: int | None = None) -> list[str]:
        query = (
            sa.select(job_errors.c.message)
            .where(job_errors.c.job_id == job_id)
            .order_by(job_errors.c.seq)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def error_count(self, job_id: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).where(job_errors.c.job_id == job_id)).scalar_one()
            )

    # -- one restore per database ----------------------------------------------------------------

    def try_lock(self, target_key: str, job_id: str, *, stale_after: float) -> str | None:
        """Take the target's lock for `job_id`; return the holder's job id if it is taken.
        Taking it again for the same `job_id` refreshes it.

        A lock whose job has finished, or whose heartbeat stopped, is taken over. A lock with
        no job (yet) belongs to an upload being received and checked: it holds while its
        holder refreshes it (`keep_fresh`), and is taken over only when that has stopped for
        RECEIVING_STALE_AFTER seconds (its process is gone)."""
        while True:
            try:
                return self._try_lock_once(target_key, job_id, stale_after)
            except sa.exc.IntegrityError:  # another process took it between our statements
                holder = self.lock_holder(target_key)  # read anew: PostgreSQL aborted that transaction
                if holder is not None:
                    return holder

    def _try_lock_once(self, target_key: str, job_id: str, stale_after: float) -> str | None:
        now = time.time()
        with self.engine.begin() as conn:
            held = conn.execute(sa.select(locks).where(locks.c.target_key == target_key)).first()
            if held is not None:
                holder = conn.execute(sa.select(jobs).where(jobs.c.id == held.job_id)).first()
                if holder is None:
                    alive = held.acquired_at > now - RECEIVING_STALE_AFTER
                else:
                    alive = holder.status in ("queued", "running") and (
                        holder.status == "queued" or (holder.heartbeat_at or 0) > now - stale_after
                    )
                if alive and held.job_id != job_id:
                    return str(held.job_id)
                conn.execute(  # only the lock judged stale, not one taken over meanwhile
                    locks.delete().where(locks.c.target_key == target_key, locks.c.job_id == held.job_id)
                )
            conn.execute(locks.insert().values(target_key=target_key, job_id=job_id, acquired_at=now))
        return None

    def unlock(self, target_key: str, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(locks.delete().where(locks.c.target_key == target_key, locks.c.job_id == job_id))

    def touch_lock(self, target_key: str, job_id: str) -> bool:
        """Refresh the lock `job_id` holds (its `acquired_at`); False if it holds none."""
        with self.engine.begin() as conn:
            touched = conn.execute(
                locks.update()
                .where(locks.c.target_key == target_key, locks.c.job_id == job_id)
                .values(acquired_at=time.time())
            )
        return touched.rowcount == 1

    @contextmanager
    def keep_fresh(self, target_key: str, job_id: str) -> Iterator[None]:
        """Refresh the job-less lock of `job_id` on a thread while the block runs (an upload
        being received and checked), so that no other request takes it over meanwhile."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(RECEIVING_REFRESH_EVERY):
                try:
                    self.touch_lock(target_key, job_id)
                except Exception:
                    log.exception("refreshing the lock of upload %s failed", job_id)

        threading.Thread(target=beat, name="rowvault-upload-lock", daemon=True).start()
        try:
            yield
        finally:
            stop.set()  # not joined: a last refresh of a released lock changes nothing

    def lock_holder(self, target_key: str) -> str | None:
        with self.engine.connect() as conn:
            holder = conn.execute(sa.select(locks.c.job_id).where(locks.c.target_key == target_key)).scalar()
        return str(holder) if holder else None

    # -- jobs whose process is gone ---------------------------------------------------------------

    def interrupt_stale(self, *, stale_after: float, dead_owners: Iterable[str] = ()) -> list[str]:
        """Mark running jobs interrupted when their heartbeat stopped or their process is
        known to be gone; release their locks. Returns their ids."""
        now = time.time()
        dead = set(dead_owners)
        stopped = []
        for job in self.active():
            gone = job.owner in dead or (
                job.status == "running" and (job.heartbeat_at or 0) < now - stale_after
            )
            if gone:
                job.interrupt()
                self.save(job)
                self.unlock(job.target_key, job.id)
                stopped.append(job.id)
        return stopped

    def requeue_stale(
        self, target_key: str | None, *, stale_after: float, dead_owners: Iterable[str] = (), limit: int
    ) -> tuple[list[str], list[str]]:
        """Running jobs (of `target_key`, or any) whose process is gone go back to `queued`,
        to resume from their checkpoint on another worker; their lock stays theirs. A job
        requeued `limit` times already becomes `interrupted` instead (a job that kills its
        worker every time waits for a person). Returns (requeued, interrupted) ids. Only one
        of several processes that sweep at once moves a job."""
        now = time.time()
        dead = set(dead_owners)
        requeued: list[str] = []
        stopped: list[str] = []
        for job in self.active():
            if job.status != "running" or (target_key is not None and job.target_key != target_key):
                continue
            if job.owner not in dead and (job.heartbeat_at or 0) >= now - stale_after:
                continue
            times = int(job.checkpoint.get("requeued") or 0)
            if times >= limit:
                job.interrupt()
                self.save(job)
                self.unlock(job.target_key, job.id)
                stopped.append(job.id)
                continue
            checkpoint = {**job.checkpoint, "requeued": times + 1}
            with self.engine.begin() as conn:
                moved = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job.id, jobs.c.status == "running", jobs.c.owner == job.owner)
                    .where(jobs.c.heartbeat_at == job.heartbeat_at)
                    .values(status="queued", owner=None, heartbeat_at=now, checkpoint=_dump(checkpoint))
                )
            if moved.rowcount == 1:
                log.warning(
                    "[restore] job %s: its process %s is gone; queued again to resume", job.id, job.owner
                )
                requeued.append(job.id)
        return requeued, stopped


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA busy_timeout = 10000")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()
