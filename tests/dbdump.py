"""Read a whole database back through SQLAlchemy, for comparing two databases."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

Dump = dict[str, list[tuple[Any, ...]]]


def dump(url: str, *, portable: bool = False, json_columns: set[str] = frozenset()) -> Dump:
    """Every table's rows, sorted. `portable` folds the differences engines cannot avoid
    (time zones dropped by MySQL, UUID objects vs text, JSON kept as text by MariaDB)."""
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    out: Dump = {}
    with engine.connect() as conn:
        metadata.reflect(bind=conn)
        for name, table in metadata.tables.items():
            for column in table.columns:
                if isinstance(column.type, sa.Float):
                    column.type.asdecimal = False  # MySQL reflects DOUBLE as Decimal-returning
            rows = conn.execute(sa.select(table)).fetchall()
            cols = [c.name for c in table.columns]
            normalized = [
                tuple(
                    _value(v, portable, f"{name}.{c}" in json_columns) for v, c in zip(row, cols, strict=True)
                )
                for row in rows
            ]
            out[str(name)] = sorted(normalized, key=repr)
    engine.dispose()
    return out


def _value(value: Any, portable: bool, is_json: bool) -> Any:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if is_json:  # JSON is compared as JSON: MariaDB keeps it as text, and JSON null is NULL
        value = json.loads(value) if isinstance(value, str) else value
        return None if value is None else json.dumps(value, sort_keys=True)
    if not portable:
        return value
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).replace(tzinfo=None)
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def counts(url: str) -> dict[str, int]:
    return {name: len(rows) for name, rows in dump(url).items()}


def run(url: str, *statements: str) -> None:
    """Run SQL statements in one transaction (test set-up)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
    engine.dispose()
    return found
