"""The original feature's backups restore (DESIGN §3): camelCase keys, string ids, ISO
timestamps ending in `Z`, no metadata, and an empty array for a table with no rows. The
fixture is kept in exactly that shape (tests/fixtures/original-backup.json)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

import rowvault

FIXTURE = Path(__file__).parent / "fixtures" / "original-backup.json"
STAMP = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
"""Milliseconds, as the original application's ORM declared its timestamps."""


def app_schema(url: str) -> None:
    """The original application's tables, snake_case as its ORM created them."""
    metadata = sa.MetaData()
    sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("name", sa.String(100)),
        sa.Column("role", sa.String(20)),
        sa.Column("created_at", STAMP),
        sa.Column("updated_at", STAMP),
    )
    sa.Table(
        "businesses",
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(32), sa.ForeignKey("users.id")),
        sa.Column("name", sa.String(200)),
        sa.Column("is_demo", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", STAMP),
    )
    sa.Table(
        "business_products",
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("business_id", sa.String(32), sa.ForeignKey("businesses.id")),
        sa.Column("name", sa.String(200)),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("created_at", STAMP),
    )
    sa.Table(
        "audit_logs",
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("business_id", sa.String(32), sa.ForeignKey("businesses.id")),
        sa.Column("action", sa.String(50)),
        sa.Column("created_at", STAMP),
    )
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    engine.dispose()


def rows(url: str, table: str) -> list[Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").fetchall()
    engine.dispose()
    return found


def instant(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def test_the_original_features_backup_restores_on_each_engine(make_db: Any, engine_kind: str) -> None:
    url = make_db(engine_kind)
    app_schema(url)

    result = rowvault.restore(url, FIXTURE)

    assert result.success, result.errors
    assert result.processed == result.total == 7
    users = rows(url, "users")
    assert [u[0] for u in users] == ["usr_01HX2Y4", "usr_01HX2Y5"]
    assert instant(users[1][4]) == datetime(2024, 3, 3, 11, 20, 30, 500000, tzinfo=UTC)
    products = rows(url, "business_products")
    assert [(p[0], p[1], Decimal(str(p[3]))) for p in products] == [
        ("prd_1", "biz_7Q2", Decimal("6.50")),
        ("prd_2", "biz_7Q2", Decimal("2.25")),
        ("prd_3", "biz_7Q3", Decimal("120.00")),
    ]
    assert [bool(b[3]) for b in rows(url, "businesses")] == [False, True]
    assert rows(url, "audit_logs") == []

    again = rowvault.restore(url, FIXTURE)
    assert again.success, again.errors
    assert sum(t.unchanged for t in again.tables.values()) == 7
