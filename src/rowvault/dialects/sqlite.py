"""SQLite: `executemany` of INSERT … ON CONFLICT DO UPDATE through the sqlite3 module."""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from .base import Dialect, Target


class SQLiteDialect(Dialect):
    name: ClassVar[str] = "sqlite"
    paramstyle: ClassVar[str] = "qmark"
    max_params: ClassVar[int] = 30000

    def prepare(self, conn: Any) -> None:
        conn.isolation_level = None  # autocommit; rowvault issues BEGIN/COMMIT itself
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")

    def begin_snapshot(self, conn: Any) -> None:
        conn.isolation_level = None
        conn.execute("BEGIN")

    def is_record_error(self, exc: BaseException) -> bool:
        if isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError)):
            return True
        if isinstance(exc, sqlite3.InterfaceError):
            return True  # a value the driver cannot bind
        if isinstance(exc, OverflowError):
            return True  # an integer beyond 64 bits
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            return "too big" in text or "datatype mismatch" in text
        return False

    def upsert_sql(self, target: Target) -> str:
        if "upsert" not in target.statements:
            table = target.table
            stmt = sqlite.insert(table).values(
                {c: sa.bindparam(f"p_{i}") for i, c in enumerate(target.columns)}
            )
            updatable = target.updatable
            if updatable:
                excluded = stmt.excluded
                stmt = stmt.on_conflict_do_update(
                    index_elements=target.key,
                    set_={c: excluded[c] for c in updatable},
                    where=sa.tuple_(*(table.c[c] for c in updatable)).is_distinct_from(
                        sa.tuple_(*(excluded[c] for c in updatable))
                    ),
                )
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=target.key)
            target.statements["upsert"] = self.compile(stmt)[0]
        return str(target.statements["upsert"])

    def skip_sql(self, target: Target) -> str:
        if "skip" not in target.statements:
            stmt = sqlite.insert(target.table).values(
                {c: sa.bindparam(f"p_{i}") for i, c in enumerate(target.columns)}
            )
            target.statements["skip"] = self.compile(
                stmt.on_conflict_do_nothing(index_elements=target.key)
            )[0]
        return str(target.statements["skip"])
