"""Backup -> restore gives identical rows, on each engine and across engines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo

from .dbdump import dump

JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}
RECORDS = 3000


def test_round_trip_is_identical_on_each_engine(make_db, engine_kind: str, tmp_path: Path) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, RECORDS)
    backup = tmp_path / "backup.json.gz"
    written = rowvault.backup(source, backup)
    assert written.total == RECORDS

    result = rowvault.restore(target, backup)

    assert result.success, result.errors[:5]
    assert result.processed == result.total == RECORDS
    assert dump(target, json_columns=JSON_COLUMNS) == dump(source, json_columns=JSON_COLUMNS)


@pytest.mark.parametrize(
    ("first", "second"),
    [("sqlite", "postgresql"), ("postgresql", "mysql"), ("mysql", "sqlite"), ("sqlite", "mysql")],
)
def test_round_trip_across_engines(make_db, first: str, second: str, tmp_path: Path) -> None:
    source, target = make_db(first), make_db(second)
    build_demo(source, RECORDS)
    backup = tmp_path / "backup.json.gz"
    rowvault.backup(source, backup)

    result = rowvault.restore(target, backup)

    assert result.success, result.errors[:5]
    assert dump(target, portable=True, json_columns=JSON_COLUMNS) == dump(
        source, portable=True, json_columns=JSON_COLUMNS
    )


def test_restoring_twice_leaves_the_same_database(make_db, engine_kind: str, tmp_path: Path) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, RECORDS)
    backup = tmp_path / "backup.json"
    rowvault.backup(source, backup)
    rowvault.restore(target, backup)
    first = dump(target)

    again = rowvault.restore(target, backup)

    assert again.success, again.errors[:5]
    assert dump(target) == first
    assert sum(t.created for t in again.tables.values()) == 0
    assert sum(t.updated for t in again.tables.values()) == 0
    assert sum(t.unchanged for t in again.tables.values()) == RECORDS


def test_restore_updates_changed_rows_and_counts_them(make_db, engine_kind: str, tmp_path: Path) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, RECORDS)
    backup = tmp_path / "backup.json"
    rowvault.backup(source, backup)
    rowvault.restore(target, backup)
    engine = sa.create_engine(target)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE users SET name = 'changed' WHERE id <= 10")
        conn.exec_driver_sql("DELETE FROM daily_metrics WHERE metric = 'visits'")
        conn.exec_driver_sql("DELETE FROM audit_logs WHERE id <= 5")
    engine.dispose()

    again = rowvault.restore(target, backup)

    assert again.tables["users"].updated == 10
    assert again.tables["audit_logs"].created == 5
    assert again.tables["daily_metrics"].created > 0
    assert dump(target, json_columns=JSON_COLUMNS) == dump(source, json_columns=JSON_COLUMNS)


def test_next_insert_without_id_succeeds_after_restore(make_db, engine_kind: str, tmp_path: Path) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, RECORDS)
    backup = tmp_path / "backup.json"
    rowvault.backup(source, backup)
    rowvault.restore(target, backup)

    engine = sa.create_engine(target)
    users = sa.Table("users", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        highest = conn.execute(sa.select(sa.func.max(users.c.id))).scalar_one()
        new_id = conn.execute(
            users.insert().values(
                email="new@example.com",
                name="New",
                role="staff",
                is_demo=False,
                created_at=datetime.now(UTC),
            )
        ).inserted_primary_key[0]
    engine.dispose()
    assert new_id > highest
