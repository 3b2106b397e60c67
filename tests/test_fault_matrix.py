"""A restore of 200,000 records SIGKILLed at each moment that matters, then resumed (issue 9
item 2): the job shows `interrupted`, `rowvault resume` finishes it, the target equals the
source (row counts and a checksum per table, indexes, foreign keys, counters), and the
resumed run writes at most the remaining records plus one batch.

Each cell is two real processes: `tests/killpoints.py` runs the real CLI restore and kills
itself at the point (it also writes down what had really been committed), then a plain
`rowvault resume`. Batches are a fixed 1,000 records, so a kill lands on the same batch every
run and "one batch" means the same thing on every engine. Past the mid-table point the kill
lands just after the job wrote its checkpoint, so what a resume redoes beyond it is the
resume's own doing; mid-table it lands two batches after a checkpoint write, which is what a
throttled checkpoint allows. The targets are compared by checksums with an uninterrupted
restore that `dump` found equal to the source (`reference`). MariaDB's cells are marked slow.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import rowvault
from rowvault.demo import build_demo
from rowvault.jobs.store import StateStore

from .clirun import cli_env, rowvault_cli
from .conftest import ENGINES, server_url
from .dbdump import Dump, dump
from .dbdump import run as run_sql

RECORDS = 200_000
BATCH = 1000
KILLPOINTS = Path(__file__).with_name("killpoints.py")
JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}
Sums = dict[str, tuple[int, str]]

POINTS = {
    "validation": "validation:100000",
    "tables-half-created": "mid-create:4",
    "tables-created": "created",
    "mid-table": "mid-table:business_products:15",
    "between-tables": "between-tables:audit_logs",
    "held-back-keys": "deferred:departments",
    "indexes-and-keys": "ddl",
    "counters": "counters",
}


class ResumeRedidTooMuch(AssertionError):
    """The resumed run wrote more than the remaining records plus one batch."""


@dataclass
class Source:
    """The demo database and its backup, built once per session."""

    db: str
    backup: Path
    totals: dict[str, int]


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    folder = tmp_path_factory.mktemp("fault-matrix")
    db = f"sqlite:///{folder / 'source.db'}"
    totals = build_demo(db, RECORDS)
    backup = folder / "source.json.gz"
    rowvault.backup(db, backup)
    return Source(db, backup, totals)


@pytest.fixture(scope="session")
def reference(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Sums]]:
    """reference(kind): the checksums of an uninterrupted restore of the backup on that engine,
    which `dump` (every value, JSON as JSON, across engines the portable form) found equal to
    the source. A cell's target must have the same checksums: it then equals the source too,
    and each cell costs one checksum pass in the server instead of a dump."""
    made: dict[str, Sums] = {}
    drops: list[Callable[[], None]] = []
    source_dumps: dict[bool, Dump] = {}

    def sums_of(kind: str) -> Sums:
        if kind not in made:
            url, drop = new_database(kind, tmp_path_factory.mktemp("reference"))
            drops.append(drop)
            rowvault.restore(url, source.backup, batch_size=BATCH)
            portable = kind != "sqlite"
            if portable not in source_dumps:
                source_dumps[portable] = dump(source.db, portable=portable, json_columns=JSON_COLUMNS)
            assert_same_rows(dump(url, portable=portable, json_columns=JSON_COLUMNS), source_dumps[portable])
            made[kind] = checksums(url)
        return made[kind]

    yield sums_of
    for drop in drops:
        drop()


def assert_same_rows(found: Dump, expected: Dump) -> None:
    """Table by table, naming the first row that differs (a diff of 200,000 rows would not do)."""
    assert sorted(found) == sorted(expected)
    for table, rows in expected.items():
        if found[table] != rows:
            known = set(rows)
            extra = next((r for r in found[table] if r not in known), None)
            pytest.fail(
                f"{table}: {len(found[table])} rows, the source {len(rows)}; first unlike row {extra}"
            )


def new_database(kind: str, folder: Path) -> tuple[str, Callable[[], None]]:
    """A new empty database of `kind` for the whole session, and how to drop it."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'reference.db'}", lambda: None
    name = f"rv_ref_{uuid.uuid4().hex[:12]}"
    quoted = f'"{name}"' if kind == "postgresql" else f"`{name}`"
    admin = sa.create_engine(server_url(kind), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {quoted}")

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")
        admin.dispose()

    return make_url(server_url(kind)).set(database=name).render_as_string(hide_password=False), drop


def checksums(url: str) -> Sums:
    """Per table: its row count and an md5 over its rows in key order, computed by the server
    (PostgreSQL: each row's text; MariaDB: each value's MD5), for SQLite over the raw rows."""
    engine = sa.create_engine(url)
    quote = engine.dialect.identifier_preparer.quote
    sums: Sums = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if engine.dialect.name == "mysql":
            conn.exec_driver_sql("SET SESSION group_concat_max_len = 1073741824")
        for table in inspector.get_table_names():
            columns = [str(c["name"]) for c in inspector.get_columns(table)]
            key = inspector.get_pk_constraint(table)["constrained_columns"] or columns
            order = ", ".join(quote(c) for c in key)
            if engine.dialect.name == "sqlite":
                raw = conn.connection.driver_connection
                rows = raw.execute(f"SELECT * FROM {quote(table)} ORDER BY {order}").fetchall()
                sums[table] = (len(rows), hashlib.md5(repr(rows).encode()).hexdigest())
                continue
            if engine.dialect.name == "postgresql":
                by = ", ".join(f"t.{quote(c)}" for c in key)
                sql = (
                    f"SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY {by})) FROM {quote(table)} t"
                )
            else:
                row = "MD5(CONCAT(" + ", ".join(f"IFNULL(MD5({quote(c)}), '-')" for c in columns) + "))"
                agg = f"MD5(GROUP_CONCAT({row} ORDER BY {order} SEPARATOR ''))"
                sql = f"SELECT COUNT(*), {agg} FROM {quote(table)}"
            count, digest = conn.exec_driver_sql(sql).one()
            sums[table] = (int(count), str(digest))
    engine.dispose()
    return sums


def schema_shape(url: str) -> dict[str, dict[str, Any]]:
    """Per table: its unique keys, foreign keys and secondary indexes, by columns."""
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    shape = {}
    for table in inspector.get_table_names():
        indexes = inspector.get_indexes(table)
        shape[table] = {
            "unique": sorted(
                {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
                | {tuple(ix["column_names"]) for ix in indexes if ix.get("unique")}
            ),
            "foreign": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": {tuple(ix["column_names"]) for ix in indexes if not ix.get("unique")},
        }
    engine.dispose()
    return shape


def counters_behind(url: str) -> list[str]:
    """Tables whose auto-increment counter would hand out a key already restored."""
    engine = sa.create_engine(url)
    behind = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            highest = conn.exec_driver_sql(f"SELECT max(id) FROM {table}") if _has_id(conn, table) else None
            top = highest.scalar() if highest is not None else None
            if top is None:
                continue
            if engine.dialect.name == "postgresql":
                seq = conn.exec_driver_sql(f"SELECT pg_get_serial_sequence('{table}', 'id')").scalar()
                last = (
                    conn.exec_driver_sql(f"SELECT pg_sequence_last_value('{seq}')").scalar() if seq else top
                )
                if last is None or last < top:
                    behind.append(f"{table}: counter at {last}, highest key {top}")
            elif engine.dialect.name == "mysql":
                auto = conn.exec_driver_sql(
                    "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                    f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
                ).scalar()
                if auto is not None and auto <= top:
                    behind.append(f"{table}: next key {auto}, highest key {top}")
    engine.dispose()
    return behind


def _has_id(conn: sa.Connection, table: str) -> bool:
    return any(
        c["name"] == "id" and isinstance(c["type"], sa.Integer) for c in sa.inspect(conn).get_columns(table)
    )


def tables_in(url: str) -> list[str]:
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    engine = sa.create_engine(url)
    names = sa.inspect(engine).get_table_names()
    engine.dispose()
    return names


# -- the processes -----------------------------------------------------------------------------


def killed_restore(point: str, backup: Path, target: str, home: Path, truth: Path) -> dict[str, Any]:
    """Run the restore under the kill point; returns what the wrapper wrote down."""
    args = ["restore", str(backup), "--db", target, "--batch-size", str(BATCH), "--json"]
    run = subprocess.run(
        [sys.executable, str(KILLPOINTS), point, str(truth), "--", *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=300,
    )
    assert run.returncode == -9, f"not killed at {point} (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    return dict(json.loads(truth.read_bytes()))


def check_work_after_resume(truth: dict[str, Any], result: dict[str, Any], totals: dict[str, int]) -> None:
    """What the resumed run wrote is at most what was left (per the kill's own count of the
    committed batches) plus one batch."""
    written, extra = 0, {}
    for table, counts in result["results"].items():
        wrote = counts["created"] + counts["updated"] + counts["unchanged"] + counts["failed"]
        left = totals[table] - truth["settled"].get(table, 0)
        written += wrote
        if wrote > left:
            extra[table] = f"{wrote} written, {left} left"
    remaining = sum(totals.values()) - sum(truth["settled"].values())
    if written > remaining + BATCH:
        raise ResumeRedidTooMuch(
            f"killed at {truth['moment']}: {remaining} records were left, the resumed run wrote "
            f"{written} (more than one batch of {BATCH} over): {extra}; the job's stored "
            f"checkpoint was {truth['stored']}"
        )


# -- the matrix --------------------------------------------------------------------------------


def cell(point: str, kind: str) -> Any:
    """One kill point on one engine; MariaDB's cells are the slow ones (about twice the time)."""
    marks: list[Any] = [pytest.mark.slow] if kind == "mysql" else []
    return pytest.param(point, kind, marks=marks, id=f"{kind}-{point}")


ATOMIC_CREATE = {"sqlite", "postgresql"}
"""Their tables are created in one transaction: a kill half-way through creates none."""
CELLS = [
    cell(point, kind)
    for kind in ENGINES
    for point in POINTS
    if not (point == "tables-half-created" and kind in ATOMIC_CREATE)
]


@pytest.mark.parametrize(("point", "kind"), CELLS)
def test_a_killed_restore_resumes_to_the_source(
    point: str, kind: str, make_db: Any, tmp_path: Path, source: Source, reference: Callable[[str], Sums]
) -> None:
    target, home = make_db(kind), tmp_path / "home"
    truth = killed_restore(POINTS[point], source.backup, target, home, tmp_path / "truth.json")

    listed = json.loads(rowvault_cli("jobs", "--json", home=home).stdout)
    assert [j["status"] for j in listed] == ["interrupted"], listed
    job_id = listed[0]["id"]
    store = StateStore(f"sqlite:///{home / 'state.db'}")
    stored = store.get(job_id)
    store.close()
    assert stored is not None and stored.resumable
    assert stored.checkpoint.get("done", {}) == truth["stored"]
    if point == "validation":
        assert tables_in(target) == [], "the validation pass wrote to the database"

    resumed = rowvault_cli("resume", job_id, "--json", home=home)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["status"] == "completed" and result["errorCount"] == 0, result["errors"][:5]

    assert checksums(target) == reference(kind)
    expected, actual = schema_shape(source.db), schema_shape(target)
    assert sorted(actual) == sorted(expected)
    for table, shape in expected.items():
        assert actual[table]["unique"] == shape["unique"], table
        assert actual[table]["foreign"] == shape["foreign"], table
        assert shape["indexes"] <= actual[table]["indexes"], table
    assert counters_behind(target) == []
    check_work_after_resume(truth, result, source.totals)


# -- the measures themselves -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ENGINES)
def test_the_checksums_and_the_counter_check_see_a_one_value_change(
    kind: str, make_db: Any, tmp_path: Path
) -> None:
    """What the cells compare by would notice a single changed value, a NULL where a value
    was, a changed row of a table without a key, and a counter left behind."""
    backup = tmp_path / "small.json.gz"
    build_demo(tmp_path / "small.db", 3000)
    rowvault.backup(tmp_path / "small.db", backup)
    target = make_db(kind)
    rowvault.restore(target, backup)
    before = checksums(target)
    assert counters_behind(target) == []
    changes = {
        "employees": "UPDATE employees SET salary = salary + 0.01 WHERE id = 7",
        "businesses": "UPDATE businesses SET founded_on = NULL WHERE id = 3",
        "daily_metrics": "UPDATE daily_metrics SET value = value + 1 WHERE day = '2024-01-01'",
    }
    for table, sql in changes.items():
        run_sql(target, sql)
        after = checksums(target)
        assert {t for t in before if after[t] != before[t]} == {table}
        before = after
    if kind != "sqlite":
        run_sql(
            target,
            "SELECT setval(pg_get_serial_sequence('users', 'id'), 1)"
            if kind == "postgresql"
            else "ALTER TABLE users AUTO_INCREMENT = 1",
        )
        if kind == "postgresql":  # MariaDB's InnoDB never sets a counter below the highest key
            assert [line.split(":")[0] for line in counters_behind(target)] == ["users"]
