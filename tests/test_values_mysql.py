"""MariaDB refuses some values outright: a NaN or an infinity (its DOUBLE has neither) and a
record larger than `max_allowed_packet`. Each is one record error with a readable reason, on
the LOAD DATA path and the INSERT path alike; the rest of the restore goes on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import rowvault
from rowvault.codec import ColumnType
from rowvault.dialects import Target
from rowvault.dialects.mysql_load import LoadPath

from .conftest import server_url

ROWS = 100  # enough for the LOAD DATA path (64 and more)
NONFINITE = {10: math.nan, 50: math.inf, 90: -math.inf}


def run(url: str, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params) if params else conn.exec_driver_sql(statement)
    engine.dispose()


def values(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
    engine.dispose()
    return found


@pytest.fixture
def readings(make_db: Any, tmp_path: Path) -> Path:
    """A PostgreSQL table of doubles, three of them NaN or infinite, backed up."""
    source = make_db("postgresql")
    rows = [{"id": i, "value": NONFINITE.get(i, i / 4)} for i in range(1, ROWS + 1)]
    run(source, "CREATE TABLE readings (id int PRIMARY KEY, value float8)")
    run(source, "INSERT INTO readings VALUES (:id, :value)", params=rows)
    backup = tmp_path / "readings.json"
    rowvault.backup(source, backup)
    return backup


def test_nan_and_infinity_are_record_errors_on_mariadb(make_db: Any, readings: Path) -> None:
    target = make_db("mysql")

    first = rowvault.restore(target, readings)  # a new table: LOAD DATA
    again = rowvault.restore(target, readings, batch_size=10)  # rows there: INSERT … ON DUPLICATE

    for result in (first, again):
        assert result.status == "completed"
        assert sorted(result.errors) == sorted(
            f"readings:{i} - column 'value': {word} cannot be stored: MariaDB/MySQL DOUBLE and "
            "FLOAT columns hold no NaN or infinity"
            for i, word in [(10, "NaN"), (50, "Infinity"), (90, "-Infinity")]
        )
    assert again.tables["readings"].unchanged == ROWS - 3
    stored = dict(values(target, "SELECT id, value FROM readings"))
    assert len(stored) == ROWS - 3
    assert stored[11] == 2.75


def packet(url: str) -> int:
    return int(values(url, "SELECT @@max_allowed_packet")[0][0])


def test_a_record_larger_than_max_allowed_packet_is_one_record_error(make_db: Any, tmp_path: Path) -> None:
    target = make_db("mysql")
    limit = packet(server_url("mysql"))
    if limit > 64 * 1024 * 1024:
        pytest.skip(f"the server's max_allowed_packet ({limit}) is too large to exceed in a test")
    source = make_db("sqlite")
    run(source, "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
    rows = [{"id": i, "name": f"f{i}", "data": b"\x00small"} for i in range(1, ROWS + 1)]
    rows[41]["data"] = b"\x01" * (limit + 1)  # files:42
    run(source, "INSERT INTO files VALUES (:id, :name, :data)", params=rows)
    backup = tmp_path / "files.json"
    rowvault.backup(source, backup)

    first = rowvault.restore(target, backup)  # a new table: LOAD DATA
    again = rowvault.restore(target, backup)  # rows there: INSERT … ON DUPLICATE

    for result in (first, again):
        assert result.status == "completed", result.errors
        assert len(result.errors) == 1
        assert result.errors[0].startswith("files:42 - the record is ")
        assert f"more than the server's max_allowed_packet ({limit:,} bytes)" in result.errors[0]
    assert again.tables["files"].unchanged == ROWS - 1
    assert values(target, "SELECT count(*), sum(length(data)) FROM files") == [(ROWS - 1, 6 * (ROWS - 1))]


def test_the_load_data_path_never_spools_a_nan_or_an_infinity() -> None:
    table = sa.Table("readings", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("value", sa.Float))
    target = Target(table, ["id", "value"], [ColumnType("integer"), ColumnType("float")], ["id"])
    load = LoadPath(lambda name: f"`{name}`", lambda text: f"'{text}'")
    try:
        assert load.spool(target, [(i, i / 2) for i in range(ROWS)])
        for bad in (math.nan, math.inf, -math.inf):
            assert not load.spool(target, [(i, bad if i == 7 else 1.0) for i in range(ROWS)])
    finally:
        load.close()
