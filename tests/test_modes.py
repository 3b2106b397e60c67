"""The restore modes on each engine: upsert (default), insert, skip, replace, and dry runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import rowvault
from rowvault import ConfirmationRequired
from rowvault.demo import build_demo

from .dbdump import counts, dump

RECORDS = 800


@pytest.fixture
def restored(make_db, engine_kind: str, tmp_path: Path) -> tuple[str, Path]:
    """A database restored from a backup, then changed by the application."""
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, RECORDS)
    backup = tmp_path / "b.json.gz"
    rowvault.backup(source, backup)
    rowvault.restore(target, backup)
    engine = sa.create_engine(target)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE users SET name = 'edited' WHERE id IN (1, 2)")
        conn.exec_driver_sql("DELETE FROM daily_metrics")
        conn.exec_driver_sql(
            "INSERT INTO daily_metrics (day, metric, value) VALUES ('2031-01-01', 'extra', 1.5)"
        )
    engine.dispose()
    return target, backup


def names(url: str) -> dict[int, str]:
    return {row[0]: row[2] for row in dump(url)["users"]}


def test_skip_keeps_existing_rows_and_adds_missing_ones(restored: tuple[str, Path]) -> None:
    target, backup = restored
    result = rowvault.restore(target, backup, mode="skip")
    assert result.success
    assert names(target)[1] == "edited"
    assert result.tables["users"].unchanged == result.tables["users"].total
    assert result.tables["daily_metrics"].created == result.tables["daily_metrics"].total


def test_insert_reports_rows_that_already_exist(restored: tuple[str, Path]) -> None:
    target, backup = restored
    result = rowvault.restore(target, backup, mode="insert", batch_size=500)
    users = result.tables["users"]
    assert users.failed == users.total
    assert result.tables["daily_metrics"].created == result.tables["daily_metrics"].total
    assert names(target)[1] == "edited"


def test_replace_empties_the_tables_first(restored: tuple[str, Path]) -> None:
    target, backup = restored
    result = rowvault.restore(target, backup, mode="replace", confirm_replace=True)
    assert result.success, result.errors[:3]
    assert names(target)[1] != "edited"
    assert sum(counts(target).values()) == RECORDS
    metrics = dump(target)["daily_metrics"]
    assert all(row[1] != "extra" for row in metrics)


def test_replace_without_confirmation_is_refused_before_anything_happens(
    restored: tuple[str, Path],
) -> None:
    target, backup = restored
    before = dump(target)
    with pytest.raises(ConfirmationRequired):
        rowvault.restore(target, backup, mode="replace")
    assert dump(target) == before


def test_dry_run_counts_what_would_happen_and_writes_nothing(restored: tuple[str, Path]) -> None:
    target, backup = restored
    before = dump(target)
    result = rowvault.restore(target, backup, dry_run=True)
    assert dump(target) == before
    assert result.dry_run and result.success
    assert result.tables["users"].updated == 2
    assert result.tables["daily_metrics"].created == result.tables["daily_metrics"].total
    assert result.tables["audit_logs"].unchanged == result.tables["audit_logs"].total


def test_dry_run_into_an_empty_database_creates_nothing(make_db, engine_kind: str, tmp_path: Path) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, RECORDS)
    backup = tmp_path / "b.json"
    rowvault.backup(source, backup)

    result = rowvault.restore(target, backup, dry_run=True)

    assert result.success, result.errors[:3]
    assert sum(t.created for t in result.tables.values()) == RECORDS
    assert sa.inspect(sa.create_engine(target)).get_table_names() == []
