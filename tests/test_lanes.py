"""Lanes (`rowvault.load.lanes`): a PostgreSQL table's batches written on two connections at
once give the database, the result and the rejects of one connection, and what is committed is
always a prefix of the file, so a stopped restore resumes to the same database."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import rowvault
from rowvault.cli import app
from rowvault.dialects import arrow_postgresql
from rowvault.errors import RestoreAborted
from rowvault.load import lanes
from rowvault.restore import Resume

from .backupfiles import read_backup, write_backup
from .test_columnar import comparable, exact_rows, rejected

BATCH = 50
RECORDS = 600


@pytest.fixture
def items_backup(tmp_path: Path) -> Path:
    """One table of 600 records: twelve batches of 50."""
    db = tmp_path / "items.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    metadata = sa.MetaData()
    items = sa.Table(
        "items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(60), nullable=False, unique=True),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("seen_at", sa.DateTime(timezone=True)),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            items.insert(),
            [
                {
                    "id": i,
                    "name": f"item {i}",
                    "amount": Decimal(f"{i}.25"),
                    "seen_at": datetime(2026, 1, 1, 0, i % 60, tzinfo=UTC),
                }
                for i in range(1, RECORDS + 1)
            ],
        )
    engine.dispose()
    path = tmp_path / "items.json.gz"
    rowvault.backup(db, path)
    return path


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The backend process of every connection a columnar batch was written on."""
    seen: set[int] = set()
    write = arrow_postgresql.PostgreSQLArrowWriter.write

    def spied(self: Any, conn: Any, table: Any, **kwargs: Any) -> Any:
        seen.add(conn.info.backend_pid)
        return write(self, conn, table, **kwargs)

    monkeypatch.setattr(arrow_postgresql.PostgreSQLArrowWriter, "write", spied)
    return seen


def restored_both_ways(make_db: Any, path: Path, tmp_path: Path) -> tuple[Any, Any, str, str]:
    one, two = make_db("postgresql"), make_db("postgresql")
    alone = rowvault.restore(one, path, batch_size=BATCH, jobs=1, rejects_path=tmp_path / "one.json")
    lanes_ = rowvault.restore(two, path, batch_size=BATCH, jobs=2, rejects_path=tmp_path / "two.json")
    return alone, lanes_, one, two


def test_two_lanes_write_what_one_connection_writes(
    make_db: Any, items_backup: Path, tmp_path: Path, connections: set[int]
) -> None:
    alone, parallel, one, two = restored_both_ways(make_db, items_backup, tmp_path)
    assert parallel.status == "completed" and parallel.tables["items"].created == RECORDS
    assert comparable(parallel) == comparable(alone)
    assert exact_rows(two) == exact_rows(one)
    assert len(connections) >= 3  # one connection alone, then the two lanes


def test_a_key_in_two_batches_written_at_once_ends_as_on_one_connection(
    make_db: Any,
    items_backup: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Record 120 (batch 3) repeats the key of record 70 (batch 2), record 300 the name of
    record 260. The batch holding record 70 is slowed, so the later batch takes the key first
    and the earlier one waits for it while the later waits for the earlier's commit: the lock
    wait gives up, and the row path writes both batches as one connection would."""
    metadata, tables = read_backup(items_backup)
    records = tables["items"]
    records[119] = {**records[119], "id": 70}
    records[299] = {**records[299], "name": "item 260"}
    path = write_backup(tmp_path / "twice.json.gz", metadata, tables)
    monkeypatch.setattr(lanes, "LOCK_WAIT_SECONDS", 1.0)
    write = arrow_postgresql.PostgreSQLArrowWriter.write

    def slow_first(self: Any, conn: Any, table: Any, **kwargs: Any) -> Any:
        if 71 in table.column("id").to_pylist():  # the batch of records 51-100
            time.sleep(0.5)
        return write(self, conn, table, **kwargs)

    monkeypatch.setattr(arrow_postgresql.PostgreSQLArrowWriter, "write", slow_first)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="rowvault.restore"):
        alone, parallel, one, two = restored_both_ways(make_db, path, tmp_path)
    assert time.monotonic() - started < 60
    assert comparable(parallel) == comparable(alone)
    assert parallel.tables["items"].updated == 1 and parallel.tables["items"].failed == 1
    assert rejected(parallel) == rejected(alone)
    assert sum(b"_rowvault_error" in line for line in rejected(parallel)) == 1
    lanes_refused = [r.getMessage() for r in caplog.records if "refused on a lane" in r.getMessage()]
    assert any("lock timeout" in m for m in lanes_refused), lanes_refused  # the wait was broken
    assert exact_rows(two) == exact_rows(one)


def test_a_stopped_restore_has_committed_exactly_what_its_checkpoint_says_and_resumes(
    make_db: Any, items_backup: Path, tmp_path: Path
) -> None:
    url = make_db("postgresql")
    checkpoints: list[int] = []
    stop = threading.Event()

    def checkpoint(table: str, done: int) -> None:
        checkpoints.append(done)
        if len(checkpoints) == 5:
            stop.set()

    with pytest.raises(RestoreAborted) as stopped:
        rowvault.restore(
            url, items_backup, batch_size=BATCH, jobs=2, should_stop=stop.is_set, on_checkpoint=checkpoint
        )
    assert stopped.value.cancelled
    done = checkpoints[-1]
    assert BATCH * 5 <= done < RECORDS
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ids = [row[0] for row in conn.exec_driver_sql("SELECT id FROM items ORDER BY id")]
    engine.dispose()
    assert ids == list(range(1, done + 1))  # the file's first `done` records, nothing after
    resumed = rowvault.restore(
        url, items_backup, batch_size=BATCH, jobs=2, resume=Resume(done={"items": done}, created=["items"])
    )
    assert resumed.status == "completed" and resumed.tables["items"].processed == RECORDS
    reference = make_db("postgresql")
    rowvault.restore(reference, items_backup, jobs=1)
    assert exact_rows(url) == exact_rows(reference)


def test_without_a_second_connection_the_restore_goes_on_over_one(
    make_db: Any, items_backup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: set[int]
) -> None:
    def refused(self: Any) -> Any:
        raise psycopg.OperationalError("sorry, too many clients already")

    monkeypatch.setattr(lanes.Lane, "_connection", refused)
    url = make_db("postgresql")
    result = rowvault.restore(url, items_backup, batch_size=BATCH, jobs=2)
    assert result.status == "completed" and result.tables["items"].created == RECORDS
    assert result.error_count == 0
    assert len(connections) == 1  # the restore's own connection took every batch
    reference = make_db("postgresql")
    rowvault.restore(reference, items_backup, jobs=1)
    assert exact_rows(url) == exact_rows(reference)


def test_jobs_out_of_range_is_a_clear_error(items_backup: Path, make_db: Any) -> None:
    with pytest.raises(rowvault.OptionError, match="jobs must be from 1 to 16, not 0"):
        rowvault.restore(make_db("postgresql"), items_backup, jobs=0)


def test_the_command_line_sets_the_connections(
    make_db: Any, items_backup: Path, connections: set[int]
) -> None:
    url = make_db("postgresql")
    args = ["restore", str(items_backup), "--db", url, "--batch-size", str(BATCH), "--json"]
    result = CliRunner().invoke(app, [*args, "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert len(connections) == 1
    refused = CliRunner().invoke(app, [*args, "--jobs", "17"])
    assert refused.exit_code == 2 and "--jobs" in refused.output
