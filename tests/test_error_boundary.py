"""What the database's driver raises reaches a user as one line from rowvault, with exit code 1
and no traceback: a wrong --db, a server that does not answer, a connection lost after the
data, a full disk, a port in use. A bug in rowvault is raised as itself, never counted as
rejected records; ids in messages are spelled as in the file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import rowvault
from rowvault.cli.display import console, restore_summary
from rowvault.demo import build_demo
from rowvault.dialects.mysql import MySQLDialect
from rowvault.dialects.postgresql import PostgreSQLDialect
from rowvault.dialects.sqlite import SQLiteDialect
from rowvault.file.writer import BackupWriter
from rowvault.results import RestoreResult

from .conftest import ENGINES


def rowvault_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def assert_one_error_line(run: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit code 1, no traceback, exactly one `error:` line, holding `words`."""
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert run.returncode == 1, run.stderr
    return errors[0]


@pytest.fixture(scope="module")
def backup_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    build_demo(folder / "source.db", 3000)
    path = folder / "backup.json.gz"
    rowvault.backup(folder / "source.db", path)
    return path


# -- a wrong --db ----------------------------------------------------------------------------


def test_a_backup_file_given_as_the_database(backup_file: Path) -> None:
    for command in (["restore", str(backup_file)], ["backup", "-o", str(backup_file) + ".out"]):
        run = rowvault_cli(*command, "--db", str(backup_file))
        assert_one_error_line(run, "a backup file, not a SQLite database", "--db")


def test_a_file_that_is_not_a_database(backup_file: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n" * 100)
    for command in (
        ["restore", str(backup_file)],
        ["validate", str(backup_file)],
        ["backup", "-o", str(tmp_path / "out.json")],
    ):
        run = rowvault_cli(*command, "--db", str(notes))
        assert_one_error_line(run, "not a database", str(notes))
    assert notes.read_text() == "shopping list\n" * 100


def test_a_server_that_does_not_answer(backup_file: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run = rowvault_cli("restore", str(backup_file), "--db", f"postgresql://postgres@127.0.0.1:{port}/x")
    assert_one_error_line(run, "cannot connect", "check that the server is running")


# -- after the data ------------------------------------------------------------------------


def _parents_and_children(make_db: Callable[[str], str], tmp_path: Path) -> tuple[Path, str]:
    """A backup of `parents` and `children`, and a target that holds `parents` already: the
    restore creates `children`, whose foreign key to `parents` comes after the data."""
    source, target = make_db("postgresql"), make_db("postgresql")
    metadata = sa.MetaData()
    parents = sa.Table("parents", metadata, sa.Column("id", sa.Integer, primary_key=True))
    children = sa.Table(
        "children",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.ForeignKey("parents.id")),
    )
    engine = sa.create_engine(source)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(parents.insert(), [{"id": i} for i in range(50)])
        conn.execute(children.insert(), [{"id": i, "parent_id": i % 50} for i in range(500)])
    engine.dispose()
    path = tmp_path / "b.json.gz"
    rowvault.backup(source, path)
    target_engine = sa.create_engine(target)
    parents.to_metadata(sa.MetaData()).create(target_engine)
    with target_engine.begin() as conn:
        conn.execute(parents.insert(), [{"id": i} for i in range(50)])
    target_engine.dispose()
    return path, target


@pytest.mark.parametrize("retries", [0, 5])
def test_a_connection_lost_while_foreign_keys_are_added(
    make_db: Callable[[str], str], tmp_path: Path, retries: int
) -> None:
    """The test holds a lock that only adding the foreign key waits for, then kills the
    restore's backend. With retries the restore waits on a new connection and finishes once
    the lock is gone; without, it stops with one line that says how to go on."""
    path, target = _parents_and_children(make_db, tmp_path)
    target_engine = sa.create_engine(target)
    locker = target_engine.connect()
    locker.exec_driver_sql(
        "LOCK TABLE parents IN ROW EXCLUSIVE MODE"
    )  # the upsert passes, ADD FOREIGN KEY waits
    restore = subprocess.Popen(
        [sys.executable, "-m", "rowvault.cli", "restore", str(path), "--db", target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ROWVAULT_RETRIES": str(retries)},
    )
    try:
        pid = _wait_for_lock(target_engine, "ALTER TABLE")
        with target_engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        if retries:
            _wait_for_lock(target_engine, "ALTER TABLE", other_than=pid)  # the same step, a new backend
            locker.rollback()
        out, err = restore.communicate(timeout=60)
    finally:
        restore.kill()
        locker.rollback()
        locker.close()
    run = subprocess.CompletedProcess(restore.args, restore.returncode, out, err)
    if not retries:
        target_engine.dispose()
        assert_one_error_line(run, "the connection to the database was lost", "rowvault resume")
        return
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "trying again on a new connection" in run.stderr
    with target_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM children").scalar() == 500
        fks = sa.inspect(conn).get_foreign_keys("children")
    target_engine.dispose()
    assert [fk["referred_table"] for fk in fks] == ["parents"]


def _wait_for_lock(engine: sa.Engine, query: str, *, other_than: int | None = None) -> int:
    """The backend waiting on a lock for `query` (not `other_than`: a terminated backend
    stays in pg_stat_activity for a moment after pg_terminate_backend answers)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE %(q)s",
                {"q": query + "%"},
            ).first()
        if row is not None and int(row[0]) != other_than:
            return int(row[0])
        time.sleep(0.1)
    raise AssertionError(f"no backend waited on a lock for {query!r}")


# -- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (root only); skipped where it cannot be mounted."""
    folder = tmp_path / f"small-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="module")
def big_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup (0.8 MB) whose database takes more than 2 MB; its source.db beside it."""
    folder = tmp_path_factory.mktemp("big")
    build_demo(folder / "source.db", 20_000)
    path = folder / "big.json.gz"
    rowvault.backup(folder / "source.db", path)
    return path


def test_a_backup_onto_a_full_disk(big_backup: Path, small_disk: Path) -> None:
    source = big_backup.parent / "source.db"
    run = rowvault_cli("backup", "--db", str(source), "-o", str(small_disk / "b.json"))
    assert_one_error_line(run, "the disk is full", "free some space")
    assert str(small_disk / "b.json") in run.stderr + run.stdout  # names the file
    assert list(small_disk.iterdir()) == []  # no partial file left


def test_a_restore_into_a_database_on_a_full_disk(big_backup: Path, small_disk: Path) -> None:
    run = rowvault_cli("restore", str(big_backup), "--db", str(small_disk / "t.db"))
    assert_one_error_line(run, "the database's disk is full", "free some space")
    assert "0.0s (0/s)" not in run.stderr
    assert "processed before the restore stopped" in run.stderr


def test_a_stopped_run_reports_no_speed() -> None:
    with console.capture() as shown:
        restore_summary(RestoreResult("b.json", "sqlite:///t.db", status="error"))
    assert "0 of 0 records processed before the restore stopped" in shown.get()
    assert "/s)" not in shown.get()


# -- the server --------------------------------------------------------------------------------


def test_serve_on_a_port_in_use_says_so(tmp_path: Path, rowvault_home: Path) -> None:
    rowvault_home.mkdir(parents=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = rowvault_cli("serve", "--db", str(tmp_path / "t.db"), "--port", str(port), timeout=60)
    assert_one_error_line(run, f"127.0.0.1:{port}", "in use", "--port")


# -- bugs and ids ------------------------------------------------------------------------------

DIALECTS = {"sqlite": SQLiteDialect, "postgresql": PostgreSQLDialect, "mysql": MySQLDialect}


@pytest.mark.parametrize("kind", ENGINES)
def test_a_bug_in_rowvault_is_not_reported_as_rejected_records(
    kind: str, make_db: Callable[[str], str], backup_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_encoder(*args: object, **kwargs: object) -> None:
        raise TypeError("broken encoder")  # rowvault's own code, not the driver

    monkeypatch.setattr(DIALECTS[kind], "write", broken_encoder)
    with pytest.raises(Exception) as raised:
        rowvault.restore(make_db(kind), backup_file)
    failure = raised.value
    result = getattr(failure, "result", None)
    assert result is None or result.error_count == 0, result.errors[:3]
    assert isinstance(failure, TypeError) or isinstance(failure.__cause__, TypeError)
    if kind == "sqlite":  # nothing between the batch and the caller mistakes it for the database's
        assert isinstance(failure, TypeError)


def test_ids_in_messages_are_spelled_as_in_the_file(tmp_path: Path) -> None:
    target = tmp_path / "t.db"
    engine = sa.create_engine(f"sqlite:///{target}")
    sa.Table(
        "tags", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text)
    ).create(engine)
    engine.dispose()
    writer = BackupWriter(tmp_path / "tags.json")
    writer.write_metadata({"format": "rowvault", "version": 1, "tables": {"tags": {"count": 2}}})
    writer.begin_table("tags")
    writer.write_records(
        [b'{"id":10000000000000000000000000000000000000000,"name":"big"}', b'{"id":1.50,"name":"x"}']
    )
    writer.end_table()
    writer.close()
    result = rowvault.restore(target, tmp_path / "tags.json")
    assert [e.split(" - ")[0] for e in result.errors] == [
        "tags:10000000000000000000000000000000000000000",
        "tags:1.50",
    ]
