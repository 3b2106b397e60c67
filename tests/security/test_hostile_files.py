"""A backup file cannot run SQL, and a dry run or a validation leaves no trace on the target.

The crafted files describe tables to create whose type text, lengths or precisions carry
SQL. Before the fix, PostgreSQL ran the type text verbatim in CREATE TABLE: the file
dropped a table and created another, also under --dry-run with a COMMIT in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo
from rowvault.errors import ValidationError

from ..backupfiles import write_backup
from ..dbdump import dump
from ..server import running_server

DIALECT = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}
ATTACK = "DROP TABLE victims; CREATE TABLE pwned (x INTEGER); COMMIT; --"


def hostile_metadata(dialect: str) -> dict[str, Any]:
    def table(column: dict[str, Any]) -> dict[str, Any]:
        return {
            "count": 1,
            "columns": [{"name": "id", "type": "integer", "sqlType": "INTEGER", "nullable": False}, column],
            "primaryKey": ["id"],
        }

    return {
        "format": "rowvault",
        "version": 1,
        "dialect": dialect,
        "tables": {
            "by_type": table({"name": "note", "type": "string", "sqlType": f"TEXT); {ATTACK}"}),
            "by_length": table({"name": "note", "type": "string", "sqlType": "", "length": f"10); {ATTACK}"}),
            "by_precision": table(
                {"name": "amount", "type": "decimal", "sqlType": "", "precision": f"10, 2); {ATTACK}"}
            ),
        },
    }


HOSTILE_TABLES = {"by_type": "note", "by_length": "note", "by_precision": "amount"}


@pytest.fixture
def victim(make_db: Any, engine_kind: str) -> str:
    url = make_db(engine_kind)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE victims (id INTEGER PRIMARY KEY, name VARCHAR(50))")
        conn.exec_driver_sql("INSERT INTO victims VALUES (1, 'still here')")
    engine.dispose()
    return url


@pytest.fixture
def hostile_file(tmp_path: Path, engine_kind: str) -> Path:
    records = {name: [{"id": 1, column: "1"}] for name, column in HOSTILE_TABLES.items()}
    return write_backup(tmp_path / "hostile.json", hostile_metadata(DIALECT[engine_kind]), records)


def schema_of(url: str) -> dict[str, Any]:
    """Tables, columns, indexes, foreign keys and sequences: what DDL would change."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        shape: dict[str, Any] = {}
        for name in sorted(inspector.get_table_names()):
            shape[name] = (
                [(c["name"], str(c["type"])) for c in inspector.get_columns(name)],
                sorted(str(ix) for ix in inspector.get_indexes(name)),
                sorted(str(fk) for fk in inspector.get_foreign_keys(name)),
            )
        if engine.dialect.name == "postgresql":
            shape["(sequences)"] = sorted(inspector.get_sequence_names())
        return shape
    finally:
        engine.dispose()


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROWVAULT_", "DATABASE_URL"))}
    env["ROWVAULT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def assert_refused_naming_each_column(text: str) -> None:
    for table, column in HOSTILE_TABLES.items():
        assert f"table {table!r}: column {column!r}" in text, text
    assert "Traceback" not in text


def test_a_crafted_file_is_refused_by_the_library_and_changes_nothing(
    victim: str, hostile_file: Path
) -> None:
    before = (schema_of(victim), dump(victim))
    for dry_run in (False, True):
        with pytest.raises(ValidationError) as refused:
            rowvault.restore(victim, hostile_file, dry_run=dry_run)
        assert_refused_naming_each_column(str(refused.value))
    with pytest.raises(ValidationError):
        rowvault.validate(victim, hostile_file)
    assert (schema_of(victim), dump(victim)) == before


def test_a_crafted_file_is_refused_by_the_cli_and_changes_nothing(
    victim: str, hostile_file: Path, tmp_path: Path
) -> None:
    before = (schema_of(victim), dump(victim))
    for args in (
        ["restore", str(hostile_file), "--db", victim],
        ["restore", str(hostile_file), "--db", victim, "--dry-run"],
        ["validate", str(hostile_file), "--db", victim],
    ):
        done = cli(*args, home=tmp_path / "home")
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert_refused_naming_each_column(done.stdout + done.stderr)
    assert (schema_of(victim), dump(victim)) == before


def test_a_crafted_file_is_refused_by_the_api_and_changes_nothing(
    victim: str, hostile_file: Path, tmp_path: Path
) -> None:
    before = (schema_of(victim), dump(victim))
    with running_server(victim, tmp_path / "home") as server, server.client() as client:
        for params in ({}, {"dryRun": "true"}):
            answer = client.post(
                "/api/backup",
                params=params,
                content=hostile_file.read_bytes(),
                headers={"content-type": "application/json", "x-rowvault": "1"},
            )
            assert answer.status_code == 400, answer.text
            assert_refused_naming_each_column(answer.json()["detail"])
        jobs = client.get("/api/backup/jobs").json()["jobs"]
    assert jobs == []
    assert (schema_of(victim), dump(victim)) == before


def test_names_from_a_file_reach_sql_only_as_quoted_identifiers(
    make_db: Any, engine_kind: str, tmp_path: Path
) -> None:
    url = make_db(engine_kind)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE victims (id INTEGER PRIMARY KEY)")
    engine.dispose()
    table = 'odd"; `DROP` TABLE victims; --'
    # SQLAlchemy reads a MySQL column name with a backtick back doubled: refused up front there
    column = "c\"'); DROP TABLE victims; --" + ("" if engine_kind == "mysql" else "`")
    metadata = {
        "format": "rowvault",
        "version": 1,
        "dialect": DIALECT[engine_kind],
        "tables": {
            table: {
                "count": 1,
                "columns": [
                    {"name": "id", "type": "integer", "sqlType": "INTEGER", "nullable": False},
                    {"name": column, "type": "string", "sqlType": "VARCHAR(20)", "length": 20},
                ],
                "primaryKey": ["id"],
                "indexes": [{"name": 'ix"; DROP TABLE victims; --', "columns": [column]}],
            }
        },
    }
    path = write_backup(tmp_path / "names.json", metadata, {table: [{"id": 1, column: "x"}]})
    result = rowvault.restore(url, path)
    assert result.error_count == 0
    shape = schema_of(url)
    assert set(shape) - {"(sequences)"} == {"victims", table}
    assert [c for c, _ in shape[table][0]] == ["id", column]
    assert dump(url)[table] == [(1, "x")]


def test_a_backtick_in_a_mysql_column_name_is_refused_before_anything_is_written(
    make_db: Any, tmp_path: Path
) -> None:
    url = make_db("mysql")
    metadata = {
        "format": "rowvault",
        "version": 1,
        "tables": {"t": {"count": 1, "columns": [{"name": "a`b", "type": "integer"}]}},
    }
    path = write_backup(tmp_path / "backtick.json", metadata, {"t": [{"a`b": 1}]})
    with pytest.raises(ValidationError, match="backtick"):
        rowvault.restore(url, path)
    assert schema_of(url) == {}


def test_an_unknown_but_well_formed_type_falls_back_to_the_portable_type(
    make_db: Any, tmp_path: Path
) -> None:
    url = make_db("postgresql")
    metadata = {
        "format": "rowvault",
        "version": 1,
        "dialect": "postgresql",
        "tables": {
            "moods": {
                "count": 1,
                "columns": [
                    {"name": "id", "type": "integer", "sqlType": "INTEGER", "nullable": False},
                    {"name": "mood", "type": "string", "sqlType": "mood"},
                    {
                        "name": "at",
                        "type": "datetime",
                        "sqlType": "TIMESTAMP(3) WITH TIME ZONE",
                        "timezone": True,
                    },
                ],
                "primaryKey": ["id"],
            }
        },
    }
    record = {"id": 1, "mood": "happy", "at": "2024-01-02T03:04:05.123000+00:00"}
    path = write_backup(tmp_path / "moods.json", metadata, {"moods": [record]})
    assert rowvault.restore(url, path).error_count == 0
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        types = dict(
            conn.exec_driver_sql(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'moods'::regclass AND attnum > 0"
            ).fetchall()
        )
    engine.dispose()
    assert types["mood"] == "text"
    assert types["at"] == "timestamp(3) with time zone"  # the known type, spelled by rowvault


@pytest.mark.parametrize("command", ["dry-run", "validate"])
def test_a_dry_run_or_validation_creates_no_sqlite_file(command: str, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    build_demo(source, 200)
    backup = tmp_path / "backup.json.gz"
    rowvault.backup(source, backup)
    target = tmp_path / "never.db"
    args = ["restore", str(backup), "--db", str(target), "--dry-run"]
    if command == "validate":
        args = ["validate", str(backup), "--db", str(target)]
    done = cli(*args, home=tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    rowvault.restore(target, backup, dry_run=True)
    rowvault.validate(target, backup)
    assert not target.exists()
    assert not list(tmp_path.glob("never.db*"))


def test_a_dry_run_leaves_no_table_on_a_server(make_db: Any, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    build_demo(source, 200)
    backup = tmp_path / "backup.json.gz"
    rowvault.backup(source, backup)
    for kind in ("postgresql", "mysql"):
        url = make_db(kind)
        result = rowvault.restore(url, backup, dry_run=True)
        assert result.dry_run and result.error_count == 0
        assert schema_of(url) == ({"(sequences)": []} if kind == "postgresql" else {})


def test_the_api_refuses_nothing_that_is_well_formed(tmp_path: Path) -> None:
    """The other side: an ordinary backup still restores through the API after the checks."""
    source = tmp_path / "source.db"
    build_demo(source, 300)
    backup = tmp_path / "backup.json.gz"
    rowvault.backup(source, backup)
    target = tmp_path / "target.db"
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        answer = client.post(
            "/api/backup",
            params={"wait": "true"},
            content=backup.read_bytes(),
            headers={"content-type": "application/gzip", "x-rowvault": "1"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    assert dump(f"sqlite:///{target}") == dump(f"sqlite:///{source}")
