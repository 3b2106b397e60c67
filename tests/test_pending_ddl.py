"""A restore that dies after creating its tables leaves no table without its indexes and
foreign keys: the next run - `rowvault resume` or a plain `restore` of the same file -
finishes the DDL, and the schema equals that of a clean restore (issue 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import rowvault
from rowvault import RestoreAborted
from rowvault.demo import build_demo
from rowvault.jobs.store import StateStore
from rowvault.load.pending import PENDING_TABLE
from rowvault.settings import load_settings

from .backupfiles import read_backup, write_backup
from .dbdump import dump

JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}
RECORDS = 2000


def schema_of(url: str) -> dict[str, Any]:
    """Tables with their columns, keys, indexes, foreign keys and counter positions."""
    engine = sa.create_engine(url)
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in sorted(inspector.get_table_names()):
            out[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted(
                    (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                    for ix in inspector.get_indexes(table)
                ),
                "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
                "foreign keys": sorted(
                    (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                    for fk in inspector.get_foreign_keys(table)
                ),
                "counter": _counter(conn, table)
                if "id" in {c["name"] for c in inspector.get_columns(table)}
                else None,
            }
    engine.dispose()
    return out


def _counter(conn: sa.Connection, table: str) -> tuple[Any, ...] | None:
    """Where the table's auto-increment counter stands, checked to be past its highest id."""
    name = conn.dialect.name
    if name == "postgresql":
        seq = conn.exec_driver_sql("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).scalar()
        if seq is None:
            return None
        last, called = conn.exec_driver_sql(f"SELECT last_value, is_called FROM {seq}").one()
        top = conn.exec_driver_sql(f'SELECT max(id) FROM "{table}"').scalar()
        assert top is None or (called and last >= top), (table, last, top)
        return (last, called)
    if name in ("mysql", "mariadb"):
        value = conn.exec_driver_sql(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        ).scalar()
        if value is None:
            return None
        top = conn.exec_driver_sql(f"SELECT max(id) FROM `{table}`").scalar()
        assert top is None or value > top, (table, value, top)
        return (value,)
    if inspector_has(conn, "sqlite_sequence"):
        return tuple(conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).all())
    return None


def inspector_has(conn: sa.Connection, table: str) -> bool:
    found = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).first()
    return found is not None


def cli_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RESTORE_", "DATABASE_URL"))}
    return {**base, **extra}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )


@pytest.fixture
def backup_file(make_db, engine_kind: str, tmp_path: Path) -> Path:
    source = make_db(engine_kind)
    build_demo(source, RECORDS)
    path = tmp_path / "backup.json.gz"
    rowvault.backup(source, path)
    return path


def tables_in(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def kill_after_create(backup: Path, target: str, wanted: set[str]) -> str:
    """Run `rowvault restore` in a subprocess, SIGKILL it as soon as the tables exist (before
    their indexes and foreign keys: the job recorded them, the target still owes their DDL),
    and return its job id."""
    slow = cli_env(RESTORE_BATCH_SIZE="200", RESTORE_BATCH_DELAY_MS="300")
    for _attempt in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "rowvault.cli", "restore", str(backup), "--db", target],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=slow,
        )
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if target.startswith("sqlite") and not Path(target.split("///", 1)[1]).exists():
                    time.sleep(0.01)
                    continue
                if wanted <= tables_in(target) and wanted <= _recorded_created():
                    break  # the tables exist and the job has recorded them: kill now
                time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        store = StateStore(load_settings().state_database)
        try:
            job = store.recent(1)[0]
        finally:
            store.close()
        if job.checkpoint.get("created") and job.status != "completed" and PENDING_TABLE in tables_in(target):
            return job.id  # the tables are in, their indexes and foreign keys still owed
        _drop_tables(target)  # killed too late (or too early): try again on an empty target
    pytest.fail("could not kill the restore between CREATE TABLE and its indexes")


def _recorded_created() -> set[str]:
    """The tables the newest job recorded as created (its checkpoint, written by the restore
    just after their CREATE TABLE committed)."""
    url = load_settings().state_database
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return set()  # the restore has not opened its state store yet
    store = StateStore(url)
    try:
        jobs = store.recent(1)
        return set(jobs[0].checkpoint.get("created") or []) if jobs else set()
    finally:
        store.close()


def _drop_tables(url: str) -> None:
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    with engine.begin() as conn:
        metadata.reflect(bind=conn)
        if conn.dialect.name in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        cascade = " CASCADE" if conn.dialect.name == "postgresql" else ""
        for table in metadata.tables.values():
            quoted = conn.dialect.identifier_preparer.quote(table.name)
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quoted}{cascade}")
    engine.dispose()


def assert_like_a_clean_restore(target: str, clean: str) -> None:
    assert schema_of(target) == schema_of(clean)
    assert dump(target, json_columns=JSON_COLUMNS) == dump(clean, json_columns=JSON_COLUMNS)
    assert PENDING_TABLE not in tables_in(target)


@pytest.mark.parametrize("then", ["resume", "restore"])
def test_a_restore_killed_after_create_table_gets_its_indexes_and_keys_from_the_next_run(
    make_db, engine_kind: str, backup_file: Path, then: str
) -> None:
    clean, target = make_db(engine_kind), make_db(engine_kind)
    rowvault.restore(clean, backup_file)
    wanted = set(tables_in(clean))

    job_id = kill_after_create(backup_file, target, wanted)
    assert PENDING_TABLE in tables_in(target)
    if then == "resume":
        done = cli("resume", job_id, "--db", target)
    else:
        done = cli("restore", str(backup_file), "--db", target)

    assert done.returncode == 0, done.stdout + done.stderr
    assert_like_a_clean_restore(target, clean)


def test_a_second_library_restore_finishes_what_a_stopped_one_created(
    make_db, engine_kind: str, backup_file: Path
) -> None:
    clean, target = make_db(engine_kind), make_db(engine_kind)
    rowvault.restore(clean, backup_file)
    with pytest.raises(RestoreAborted):
        rowvault.restore(target, backup_file, batch_size=100, should_stop=iter([False, True]).__next__)
    plan = rowvault.validate(target, backup_file)  # owed DDL refuses nothing
    assert [tp.name for tp in plan.tables if tp.new_table] == [tp.name for tp in plan.tables]

    result = rowvault.restore(target, backup_file)

    assert result.success, result.errors[:3]
    assert_like_a_clean_restore(target, clean)


def test_owed_ddl_of_a_table_left_out_of_the_next_restore_waits_with_a_warning(
    make_db, engine_kind: str, backup_file: Path
) -> None:
    clean, target = make_db(engine_kind), make_db(engine_kind)
    rowvault.restore(clean, backup_file)
    with pytest.raises(RestoreAborted):
        rowvault.restore(target, backup_file, should_stop=lambda: True)

    partial = rowvault.restore(target, backup_file, tables=["users", "businesses"])
    assert partial.success, partial.errors[:3]
    assert any("'audit_logs'" in w and "indexes and foreign keys" in w for w in partial.warnings)
    assert schema_of(target)["businesses"] == schema_of(clean)["businesses"]
    assert PENDING_TABLE in tables_in(target)

    rowvault.restore(target, backup_file)
    assert_like_a_clean_restore(target, clean)


def test_a_backup_holding_the_bookkeeping_table_restores_without_it(tmp_path: Path) -> None:
    build_demo(tmp_path / "s.db", 200)
    rowvault.backup(tmp_path / "s.db", tmp_path / "b.json")
    metadata, tables = read_backup(tmp_path / "b.json")
    tables[PENDING_TABLE] = [{"table_name": "users", "description": "{}"}]
    metadata["tables"][PENDING_TABLE] = {
        "count": 1,
        "columns": [
            {"name": "table_name", "type": "string", "sqlType": "VARCHAR(255)", "nullable": False},
            {"name": "description", "type": "string", "sqlType": "TEXT", "nullable": False},
        ],
        "primaryKey": ["table_name"],
    }
    backup = write_backup(tmp_path / "with.json", metadata, tables)

    result = rowvault.restore(tmp_path / "t.db", backup)

    assert result.success, result.errors[:3]
    assert any(PENDING_TABLE in w for w in result.warnings)
    assert PENDING_TABLE not in tables_in(f"sqlite:///{tmp_path / 't.db'}")
