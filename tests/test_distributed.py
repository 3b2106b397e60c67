"""More than one machine (ROWVAULT_JOBS=celery): two `rowvault serve` instances and two
`rowvault worker --celery` processes sharing one PostgreSQL state store, one Redis broker and
one ROWVAULT_HOME, restoring into a PostgreSQL database. A job started through one server is
followed, resumed and cancelled through the other; a worker that dies mid-job is SIGKILLed
with its pool, as a machine that crashes."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import rowvault
from rowvault.demo import build_demo
from rowvault.jobs.runner import STALE_AFTER_SECONDS
from rowvault.jobs.store import StateStore

from .celery_support import REDIS_URL, Worker, celery_worker, progress, reachable_broker, upload
from .conftest import server_url
from .dbdump import counts, dump
from .server import Server, running_server

RECORDS = 4000
JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}
SLOW = {"RESTORE_BATCH_SIZE": "100", "RESTORE_BATCH_DELAY_MS": "100"}  # 40 batches: several seconds
KILL_AFTER = 500  # records written when the worker is killed: a few batches in, far from the end
RECOVERY_DEADLINE = 2 * STALE_AFTER_SECONDS + 10  # a stale heartbeat is seen after 15 s
FINISHED = ("completed", "error", "cancelled")


def own_redis_database(url: str) -> str:
    """The test broker's next Redis database: Celery's shared keys (unacked messages, worker
    events) stay apart from test_celery's; the queues are apart anyway (one per target)."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(number + 1) % 16}"))


@pytest.fixture(scope="module")
def broker() -> str:
    return reachable_broker(own_redis_database(REDIS_URL))


Fingerprint = dict[str, tuple[int, str]]


def fingerprint(url: str) -> Fingerprint:
    """Each table's row count and a checksum of its sorted rows."""
    tables = dump(url, json_columns=JSON_COLUMNS)
    return {
        name: (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()) for name, rows in tables.items()
    }


@dataclass
class Source:
    backup: Path
    tables: Fingerprint


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A PostgreSQL demo database and its backup, so the target is compared on its own engine."""
    admin_url = server_url("postgresql")
    name = f"rv_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        build_demo(url, RECORDS)
        backup = tmp_path_factory.mktemp("source") / "backup.json.gz"
        rowvault.backup(url, backup)
        yield Source(backup, fingerprint(url))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@dataclass
class Cluster:
    a: Server
    b: Server
    workers: list[Worker]
    state: str

    def holder(self, job_id: str) -> Worker:
        """The worker whose pool process owns the job, as the state store records it."""
        store = StateStore(self.state)
        try:
            job = store.get(job_id)
        finally:
            store.close()
        assert job is not None
        holders = [w for w in self.workers if w.runs(job.owner)]
        assert len(holders) == 1, f"job {job_id} is owned by {job.owner}, not by one of the workers"
        return holders[0]

    def other(self, worker: Worker) -> Worker:
        return next(w for w in self.workers if w is not worker)


@contextmanager
def cluster(target: str, home: Path, *, broker: str, state: str, slow: bool = False) -> Iterator[Cluster]:
    """Two Celery workers and two API servers for `target`, sharing the state store, the
    broker and ROWVAULT_HOME (one machine here; on several, these are what they share)."""
    env = {"ROWVAULT_JOBS": "celery", "ROWVAULT_BROKER_URL": broker, "ROWVAULT_STATE_URL": state}
    worker_env = {**env, **(SLOW if slow else {})}
    with ExitStack() as stack:
        workers = [stack.enter_context(celery_worker(target, home, worker_env)) for _ in range(2)]
        stack.callback(forget_queue, broker, workers)  # once the workers have stopped
        a = stack.enter_context(running_server(target, home, env=env))
        b = stack.enter_context(running_server(target, home, env=env))
        for worker in workers:
            worker.wait_until_ready()
        yield Cluster(a, b, workers, state)


def forget_queue(broker: str, workers: list[Worker]) -> None:
    """Remove the target's queue and the messages a killed worker left unacknowledged (kombu's
    `unacked` hash), which would otherwise come back in an hour into a queue nobody reads.

    The queue's name is read from the workers' logs: importing rowvault.jobs.celery_queue
    here would defeat test_celery's test of a missing Celery in the same pytest process."""
    logs = " ".join(w.log.read_text(errors="replace") for w in workers)
    client = redis.Redis.from_url(broker)
    for queue in set(re.findall(r" on queue (rowvault\.[0-9a-f]+) of ", logs)):
        for tag, raw in client.hgetall("unacked").items():
            if orjson.loads(raw)[2] == queue:  # [message, exchange, routing key]
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.delete(queue)
    client.close()


def poll_until(
    client: httpx.Client, job_id: str, statuses: tuple[str, ...], *, timeout: float
) -> dict[str, object]:
    """The job's progress once its status is one of `statuses`, or the last seen at the deadline."""
    deadline = time.monotonic() + timeout
    while (record := progress(client, job_id))["status"] not in statuses and time.monotonic() < deadline:
        time.sleep(0.1)
    return record


def wait_until_written(client: httpx.Client, job_id: str, at_least: int) -> dict[str, object]:
    """Poll until the job has written `at_least` records; it must still be running then."""
    deadline = time.monotonic() + 60
    while (record := progress(client, job_id))["processed"] < at_least:  # type: ignore[operator]
        assert record["status"] in ("queued", "running"), record
        assert time.monotonic() < deadline, f"job {job_id} wrote nothing in 60 s: {record}"
        time.sleep(0.05)
    assert record["status"] == "running" and record["processed"] < RECORDS, record
    return record


def started_in(worker: Worker, job_id: str) -> int:
    return worker.log.read_text(errors="replace").count(f"job {job_id} started")


def test_a_restore_uploaded_through_one_server_is_followed_to_the_end_through_the_other(
    broker: str, source: Source, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    target, state = make_db("postgresql"), make_db("postgresql")
    with cluster(target, tmp_path / "home", broker=broker, state=state) as c:
        with c.a.client() as a, c.b.client() as b:
            sent = upload(a, source.backup)
            assert sent.status_code == 202, sent.text
            job_id = sent.json()["progressId"]
            finished = poll_until(b, job_id, FINISHED, timeout=90)
            seen_by_a = progress(a, job_id)
        runs = [started_in(w, job_id) for w in c.workers]

    assert finished["status"] == "completed", finished
    assert finished["processed"] == finished["total"] == RECORDS
    assert seen_by_a["status"] == "completed"
    assert sorted(runs) == [0, 1], runs  # one worker ran it, once
    assert fingerprint(target) == source.tables


def test_a_job_whose_worker_is_killed_completes_on_the_other_worker_by_itself(
    broker: str, source: Source, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    target, state = make_db("postgresql"), make_db("postgresql")
    with cluster(target, tmp_path / "home", broker=broker, state=state, slow=True) as c:
        with c.a.client() as a, c.b.client() as b:
            job_id = upload(a, source.backup).json()["progressId"]
            wait_until_written(b, job_id, KILL_AFTER)
            holder = c.holder(job_id)
            holder.kill()
            finished = poll_until(b, job_id, FINISHED, timeout=RECOVERY_DEADLINE)
        resumed_on_other = started_in(c.other(holder), job_id)

    assert finished["status"] == "completed", finished
    assert finished["processed"] == finished["total"] == RECORDS
    assert resumed_on_other == 1
    assert fingerprint(target) == source.tables  # nothing lost, nothing written twice


def test_cancel_through_one_server_stops_a_job_started_through_the_other(
    broker: str, source: Source, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    target, state = make_db("postgresql"), make_db("postgresql")
    with cluster(target, tmp_path / "home", broker=broker, state=state, slow=True) as c:
        with c.a.client() as a, c.b.client() as b:
            job_id = upload(a, source.backup).json()["progressId"]
            wait_until_written(a, job_id, KILL_AFTER)
            asked = b.post("/api/backup/cancel", params={"id": job_id})
            stopped = poll_until(b, job_id, FINISHED, timeout=30)
            seen_by_a = progress(a, job_id)
            written = counts(target)
            time.sleep(1.5)  # several batches' time: a job still writing would have added rows
            later = counts(target)
            again = upload(b, source.backup)
            assert again.status_code == 202, again.text  # the database's lock was released
            a.post("/api/backup/cancel", params={"id": again.json()["progressId"]})
            again_stopped = poll_until(b, again.json()["progressId"], FINISHED, timeout=30)

    assert asked.status_code == 202, asked.text
    assert stopped["status"] == "cancelled", stopped
    assert seen_by_a["status"] == "cancelled"
    assert later == written, "the cancelled job kept writing"
    assert 0 < sum(written.values()) < RECORDS
    assert again_stopped["status"] == "cancelled", again_stopped
