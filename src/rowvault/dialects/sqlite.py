"""SQLite: `executemany` of INSERT … ON CONFLICT DO UPDATE through the sqlite3 module.

JSON is text here: an upsert compares it as `json()` prints it (compact), so a document
stored with other spacing is unchanged, not rewritten; text that is not JSON compares as is.
A NaN is refused before it is sent: SQLite would store it as NULL.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from ..codec import Kind
from .base import Dialect, Mode, Outcome, Row, Target


class Unstorable(sqlite3.DataError):
    """A value SQLite would change (a NaN becomes NULL), refused before it is sent."""


def _has_nan(rows: Sequence[Row], position: int) -> bool:
    values = list(filter(None, map(itemgetter(position), rows)))
    try:
        if not math.isnan(math.fsum(values)):
            return False  # one sum at C speed answers for a column without NaN
    except (OverflowError, ValueError, TypeError):
        pass
    return any(isinstance(v, float) and math.isnan(v) for v in values)


def _as_json(expr: Any) -> Any:
    """JSON text compacted for comparing (json() fails on text that is not JSON)."""
    valid = sa.func.json_valid(expr) == sa.literal_column("1")  # a literal, not a parameter
    return sa.case((valid, sa.func.json(expr)), else_=expr)


class SQLiteDialect(Dialect):
    name: ClassVar[str] = "sqlite"
    paramstyle: ClassVar[str] = "qmark"
    max_params: ClassVar[int] = 30000
    pipelined: ClassVar[bool] = False  # in-process: the threads would only trade the GIL

    def prepare(self, conn: Any) -> None:
        conn.isolation_level = None  # autocommit; rowvault issues BEGIN/COMMIT itself
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")

    def enforce_foreign_keys(self, conn: Any, on: bool) -> None:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")

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

    def write(self, conn: Any, target: Target, rows: list[Row], *, fresh: bool, mode: Mode) -> Outcome:
        for i, kind in enumerate(target.kinds):
            if kind == "float" and _has_nan(rows, i):
                raise Unstorable(
                    f"column {target.columns[i]!r}: NaN cannot be stored: SQLite stores a NaN as NULL"
                )
        return super().write(conn, target, rows, fresh=fresh, mode=mode)

    def error_message(self, exc: BaseException, target: Target | None = None) -> str:
        if isinstance(exc, OverflowError):
            return "the integer is beyond SQLite's 64-bit range (-2^63 to 2^63-1)"
        return super().error_message(exc, target)

    def comparable(self, expr: Any, kind: Kind) -> Any:
        return _as_json(expr) if kind == "json" else expr

    def count_existing(self, conn: Any, target: Target, rows: Sequence[Row]) -> int:
        """One statement for any batch size: the keys travel as one JSON array."""
        idx = target.key_index
        keys = list({tuple(r[i] for i in idx) for r in rows})
        try:
            payload = orjson.dumps([k[0] for k in keys] if len(idx) == 1 else keys).decode()
        except TypeError:  # a key value JSON cannot carry (bytes): plain IN lists
            return super().count_existing(conn, target, rows)
        table = self.qualified(target.table)
        if len(idx) == 1:
            sql = (
                f"SELECT count(*) FROM {table} WHERE {self.quote(target.key[0])} "
                "IN (SELECT value FROM json_each(?))"
            )
        else:
            cols = ", ".join(self.quote(k) for k in target.key)
            picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(idx)))
            sql = f"SELECT count(*) FROM {table} WHERE ({cols}) IN (SELECT {picks} FROM json_each(?))"
        return int(conn.execute(sql, (payload,)).fetchone()[0])

    def upsert_sql(self, target: Target) -> str:
        if "upsert" not in target.statements:
            table = target.table
            stmt = sqlite.insert(table).values(
                {c: sa.bindparam(f"p_{i}") for i, c in enumerate(target.columns)}
            )
            updatable = target.updatable
            if updatable:
                excluded = stmt.excluded
                kinds = dict(zip(target.columns, target.kinds, strict=True))
                stmt = stmt.on_conflict_do_update(
                    index_elements=target.key,
                    set_={c: excluded[c] for c in updatable},
                    where=sa.tuple_(
                        *(self.comparable(table.c[c], kinds[c]) for c in updatable)
                    ).is_distinct_from(
                        sa.tuple_(*(self.comparable(excluded[c], kinds[c]) for c in updatable))
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
            target.statements["skip"] = self.compile(stmt.on_conflict_do_nothing(index_elements=target.key))[
                0
            ]
        return str(target.statements["skip"])
