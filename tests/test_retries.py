"""Transient failures of the database are waited out on a new connection: the server killing
the restore's connection, a lock timeout, a deadlock. The progress record says it is retrying
while the status stays `running`; the database ends as an uninterrupted restore leaves it.
Only when the retries are spent does the restore stop - as an error that can be resumed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo
from rowvault.jobs import new_runner
from rowvault.jobs.store import StateStore
from rowvault.progress import Progress
from rowvault.settings import load_settings

from .conftest import server_url
from .dbdump import dump
from .test_reconnect import kill_other_connections

RECORDS = 12_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("retries")
    source = folder / "source.db"
    build_demo(source, RECORDS)
    backup = folder / "backup.json.gz"
    rowvault.backup(source, backup)
    return source, backup


def uninterrupted(make_db: Any, kind: str, backup: Path, *, populated: bool = False) -> Any:
    """What a restore of `backup` that nothing interrupts leaves in a new database."""
    url = make_db(kind)
    for _ in range(2 if populated else 1):
        result = rowvault.restore(url, backup)
        assert result.status == "completed" and result.error_count == 0, result.errors[:3]
    return dump(url)


class Watch:
    """A progress callback that keeps every `retrying` it sees and, once, does `act` when the
    restore has written `after` records."""

    def __init__(
        self, after: int, act: Callable[[], object], on_retry: Callable[[], object] = lambda: None
    ) -> None:
        self.after = after
        self.act = act
        self.on_retry = on_retry
        self.acted = False
        self.retrying: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, progress: Progress, /) -> None:
        if progress.retrying:
            self.retrying.append((progress.status, dict(progress.retrying)))
            self.on_retry()
        if not self.acted and progress.processed >= self.after:
            self.acted = True
            self.act()


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_a_connection_the_server_kills_mid_table_is_replaced_and_the_restore_finishes(
    make_db: Any, kind: str, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    _, backup = demo
    url = make_db(kind)
    watch = Watch(RECORDS // 3, lambda: kill_other_connections(url))
    result = rowvault.restore(url, backup, progress=watch, batch_size=1000, retry_wait_seconds=0.05)
    assert watch.acted
    assert result.status == "completed" and result.error_count == 0, result.errors[:3]
    assert result.retries >= 1
    assert watch.retrying, "the progress record never said it was retrying"
    status, retrying = watch.retrying[0]
    assert status == "running"
    assert retrying["attempt"] == 1 and retrying["attempts"] == 5
    assert "connection" in retrying["reason"]
    assert dump(url) == uninterrupted(make_db, kind, backup, populated=False)


@contextmanager
def locked(url: str, table: str) -> Iterator[Callable[[], None]]:
    """Hold a lock on `table` that writers wait for; yields `release`."""
    engine = sa.create_engine(url)
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    else:
        conn.exec_driver_sql(f"SELECT * FROM {table} FOR UPDATE")
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            conn.rollback()

    try:
        yield release
    finally:
        release()
        conn.close()
        engine.dispose()


def _populated(url: str, backup: Path) -> None:
    """The target holds the backup's rows already, so the next restore updates them in place
    (row locks, and no table is created)."""
    result = rowvault.restore(url, backup)
    assert result.status == "completed", result.errors[:3]


def test_a_lock_timeout_is_waited_out(make_db: Any, demo: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = demo
    url = make_db("postgresql")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # its sessions give up on a lock after 200 ms
        conn.exec_driver_sql(f"ALTER DATABASE {sa.engine.make_url(url).database} SET lock_timeout = '200ms'")
    admin.dispose()
    _populated(url, backup)
    with locked(url, "business_products") as release:
        timer = threading.Timer(60, release)  # should the restore never ask for it
        timer.start()
        watch = Watch(10**9, lambda: None, on_retry=release)
        result = rowvault.restore(url, backup, progress=watch, retry_wait_seconds=0.3)
        timer.cancel()
    assert result.status == "completed" and result.error_count == 0, result.errors[:3]
    assert result.retries >= 1
    assert any("lock timeout" in r["reason"] for _, r in watch.retrying), watch.retrying
    assert dump(url) == uninterrupted(make_db, "postgresql", backup, populated=True)


def test_a_deadlock_the_server_breaks_is_retried(
    make_db: Any, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    """The restore updates `users` in one batch, locking rows in file order. The test locks a
    late row first; once the restore waits for it, the test asks for an early row the
    restore holds. PostgreSQL breaks the cycle by failing the restore's batch (the test's
    own deadlock check is set to come much later), which is then written again."""
    source, backup = demo
    url = make_db("postgresql")
    _populated(url, backup)
    with sa.create_engine(f"sqlite:///{source}").connect() as conn:
        ids = [row[0] for row in conn.exec_driver_sql("SELECT id FROM users ORDER BY id")]
    users = len(ids)
    engine = sa.create_engine(url)
    other = engine.connect()
    other.exec_driver_sql("SET deadlock_timeout = '60s'")
    other_pid = other.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    other.exec_driver_sql("UPDATE users SET name = name WHERE id = %(id)s", {"id": ids[-1]})
    deadlocked = threading.Event()

    def interfere() -> None:
        deadline, waiting = time.monotonic() + 60, 0
        with engine.connect() as watcher:
            while not waiting and time.monotonic() < deadline:
                time.sleep(0.05)
                waiting = watcher.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> %(pid)s",
                    {"pid": other_pid},
                ).scalar()
                watcher.rollback()  # pg_stat_activity holds still within a transaction
        if not waiting:
            other.rollback()
            return
        try:  # the restore holds this row: a lock cycle, which the server breaks
            other.exec_driver_sql("UPDATE users SET name = name WHERE id = %(id)s", {"id": ids[0]})
            deadlocked.set()
        finally:
            other.rollback()

    thread = threading.Thread(target=interfere)
    thread.start()
    watch = Watch(10**9, lambda: None)
    try:
        result = rowvault.restore(
            url, backup, progress=watch, batch_size=users, tables=["users"], retry_wait_seconds=0.1
        )
    finally:
        thread.join(timeout=60)
        other.close()
        engine.dispose()
    assert deadlocked.is_set()
    assert result.status == "completed" and result.error_count == 0, result.errors[:3]
    assert any("deadlock" in r["reason"] for _, r in watch.retrying), watch.retrying
    assert dump(url) == uninterrupted(make_db, "postgresql", backup, populated=True)


@pytest.mark.alone  # a server-wide setting for a moment
def test_a_mariadb_lock_wait_timeout_is_waited_out(
    make_db: Any, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    _, backup = demo
    url = make_db("mysql")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        before = conn.exec_driver_sql("SELECT @@GLOBAL.innodb_lock_wait_timeout").scalar()
        conn.exec_driver_sql("SET GLOBAL innodb_lock_wait_timeout = 1")  # new sessions only
    try:
        _populated(url, backup)  # (its connections, pooled, would not have the setting)
        with locked(url, "business_products") as release:
            timer = threading.Timer(60, release)  # should the restore never ask for it
            timer.start()
            watch = Watch(10**9, lambda: None, on_retry=release)
            result = rowvault.restore(url, backup, progress=watch, retry_wait_seconds=0.3)
            timer.cancel()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"SET GLOBAL innodb_lock_wait_timeout = {int(before)}")
        admin.dispose()
    assert result.status == "completed" and result.error_count == 0, result.errors[:3]
    assert any("lock wait timeout" in r["reason"] for _, r in watch.retrying), watch.retrying
    assert dump(url) == uninterrupted(make_db, "mysql", backup, populated=True)


def test_when_the_retries_are_spent_the_job_ends_in_error_and_resumes(
    make_db: Any, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    """A database that takes no connections for a while: after the retries the job stops,
    `error` and resumable, with the reason; resumed later, it finishes the database."""
    _, backup = demo
    url = make_db("postgresql")
    runner = new_runner(load_settings(DATABASE_URL=url, ROWVAULT_RETRIES="2"))
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(server_url("postgresql"), isolation_level="AUTOCOMMIT")
    seen: list[dict[str, Any]] = []

    stored_retrying: list[Any] = []

    def refuse_connections(progress: Progress, /) -> None:
        if progress.retrying:
            seen.append(dict(progress.retrying))
            job_now = runner.store.get(job_id[0])  # what any API process would answer now
            assert job_now is not None
            stored_retrying.append((job_now.status, job_now.progress.get("retrying")))
        if progress.processed >= RECORDS // 4 and not seen and progress.status == "running":
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %(n)s",
                    {"n": name},
                )

    def allow_connections() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    try:
        job_id = [runner.create_restore(backup, {"batchSize": 500}).id]
        job = runner.run(job_id[0], progress=refuse_connections)
        allow_connections()
        stored = runner.store.get(job.id)
        assert stored is not None
        assert stored.status == "error"
        assert "gave up after 2 retries" in (stored.error or "")
        assert stored.resumable
        assert [r["attempt"] for r in seen][:2] == [1, 2]
        assert stored_retrying[0][0] == "running"
        assert stored_retrying[0][1]["attempt"] == 1 and "connection" in stored_retrying[0][1]["reason"]
        resumed = runner.prepare_resume(job.id)
        finished = runner.run(resumed.id)
    finally:
        allow_connections()
        admin.dispose()
        runner.close()
        runner.store.close()
    assert finished.status == "completed", finished.error
    assert dump(url) == uninterrupted(make_db, "postgresql", backup, populated=False)


@pytest.mark.parametrize("retries", [5, 0])
def test_a_backup_whose_connection_is_killed_starts_again_or_leaves_no_file(
    make_db: Any, demo: tuple[Path, Path], tmp_path: Path, retries: int
) -> None:
    _, backup = demo
    url = make_db("postgresql")
    _populated(url, backup)
    out = tmp_path / "out" / "again.json.gz"
    out.parent.mkdir()
    watch = Watch(RECORDS // 2, lambda: kill_other_connections(url))
    if not retries:
        with pytest.raises(rowvault.RowvaultError, match="connection to the database was lost"):
            rowvault.backup(url, out, progress=watch, retries=0)
        assert watch.acted
        assert list(out.parent.iterdir()) == []  # no file, no temporary left behind
        return
    result = rowvault.backup(url, out, progress=watch, retry_wait_seconds=0.05)
    assert watch.acted
    assert result.total == RECORDS
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    again = make_db("postgresql")
    restored = rowvault.restore(again, out)
    assert restored.status == "completed" and restored.error_count == 0
    assert dump(again, portable=True) == dump(url, portable=True)


def test_a_dry_run_is_not_retried_but_stops_cleanly(make_db: Any, demo: tuple[Path, Path]) -> None:
    """A dry run's outer transaction dies with its connection: nothing to carry on from."""
    _, backup = demo
    url = make_db("postgresql")
    watch = Watch(RECORDS // 3, lambda: kill_other_connections(url))
    with pytest.raises(rowvault.RowvaultError, match="connection to the database was lost"):
        rowvault.restore(url, backup, progress=watch, dry_run=True, batch_size=1000)
    assert watch.acted and not watch.retrying


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_the_cli_finishes_by_itself_after_the_server_killed_its_connection(
    make_db: Any, kind: str, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    """A real `rowvault restore` process; the job's progress is read from the state store as
    another process would, the server kills the connections mid-table, the command exits 0."""
    _, backup = demo
    url = make_db(kind)
    home = tmp_path / "home"
    env = {**os.environ, "ROWVAULT_HOME": str(home), "RESTORE_BATCH_SIZE": "500"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rowvault.cli", "restore", str(backup), "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    killed = 0
    try:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            jobs = StateStore(f"sqlite:///{home / 'state.db'}") if (home / "state.db").exists() else None
            if jobs is None:
                continue
            try:
                running = [j for j in jobs.recent() if j.status == "running"]
                if running and int(running[0].progress.get("processed") or 0) >= RECORDS // 3:
                    killed = kill_other_connections(url)
            finally:
                jobs.close()
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert killed, "the restore ended before it could be interrupted"
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert "trying again on a new connection" in output
    assert dump(url) == uninterrupted(make_db, kind, backup)
