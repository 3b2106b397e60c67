"""PostgreSQL: COPY into a temporary stage table, then one INSERT … ON CONFLICT from it.

A table rowvault has just created (or emptied for `replace`) takes COPY straight into the
table. The merge reports how many rows it created and updated (`xmax = 0` marks an insert)
and leaves rows whose values are unchanged untouched: JSON compares as JSON (`json` has no
equality, and its text keeps the writer's spacing), intervals as their text (`1 mon` and
`30 days` are equal intervals, but not the same value).

Values are read as they are stored: intervals as ISO 8601 text (psycopg's timedelta has no
months), JSON through `encoding.stored_json` (no digit of a number lost).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any, ClassVar

import psycopg
import sqlalchemy as sa
from psycopg import errors as pgerrors
from psycopg.types.json import set_json_loads
from psycopg.types.string import TextLoader

from ..codec import Kind
from ..encoding import stored_json
from .base import Dialect, Mode, Outcome, Row, Target

_CAST_TO_TEXT: frozenset[str] = frozenset({"json", "other", "interval"})


def _json_compared(ref: str) -> str:
    """A JSON value as jsonb's text, for comparing as JSON; the rare text jsonb refuses
    (the escape \\u0000) compares as it is, instead of failing the statement."""
    return f"CASE WHEN strpos({ref}::text, '\\u0000') > 0 THEN {ref}::text ELSE {ref}::jsonb::text END"


class PostgreSQLDialect(Dialect):
    name: ClassVar[str] = "postgresql"
    max_params: ClassVar[int] = 30000
    parallel_lanes: ClassVar[bool] = True

    def prepare(self, conn: Any) -> None:
        conn.autocommit = True
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET IntervalStyle = 'iso_8601'")  # P1Y2M3DT4H: every part, read back as is
        conn.adapters.register_loader("interval", TextLoader)
        set_json_loads(stored_json, conn)

    def limit_lock_waits(self, conn: Any, seconds: float) -> None:
        conn.execute(f"SET lock_timeout = {int(seconds * 1000)}")

    def begin_snapshot(self, conn: Any) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def is_record_error(self, exc: BaseException) -> bool:
        if isinstance(exc, (psycopg.IntegrityError, psycopg.DataError)):
            return True
        return isinstance(exc, (pgerrors.CardinalityViolation, TypeError, ValueError))

    def error_message(self, exc: BaseException, target: Target | None = None) -> str:
        text = super().error_message(exc, target)
        diag = getattr(exc, "diag", None)
        detail = getattr(diag, "message_detail", None) if diag else None
        return f"{text} ({detail})" if detail else text

    def comparable(self, expr: Any, kind: Kind) -> Any:
        return sa.cast(expr, sa.Text) if kind in _CAST_TO_TEXT else expr

    # -- the COPY path ---------------------------------------------------------------------

    def stage_name(self, target: Target) -> str:
        return self.quote(f"rowvault_stage_{target.name}"[:63])

    def _compared(self, alias: str, column: str, kind: Kind) -> str:
        """A column as it is compared for "unchanged": JSON as JSON, some kinds as text."""
        ref = f"{alias}.{self.quote(column)}"
        if kind == "json":
            return _json_compared(ref)
        return f"{ref}::text" if kind in _CAST_TO_TEXT else ref

    def _row_hash(self, alias: str, target: Target) -> str:
        cols = ", ".join(
            self._compared(alias, c, k) for c, k in zip(target.columns, target.kinds, strict=True)
        )
        return f"md5(ROW({cols})::text)"

    def _seen(self, target: Target) -> str:
        return self.quote(f"rowvault_seen_{target.name}"[:63])

    def prepare_table(self, conn: Any, target: Target, *, fresh: bool, in_transaction: bool) -> None:
        """Create the stage table once per table, outside the batches' transactions. For a
        table without a key that already holds rows, also a temporary table of its rows'
        hashes (an index on the table itself would need IMMUTABLE casts and short rows)."""
        cols = ", ".join(self.quote(c) for c in target.columns)
        if not target.key and not fresh:
            seen = self._seen(target)
            self.execute(conn, f"DROP TABLE IF EXISTS pg_temp.{seen}")
            self.execute(
                conn,
                f"CREATE TEMP TABLE {seen} AS SELECT {self._row_hash('t', target)} AS h "
                f"FROM {self.qualified(target.table)} t",
            )
            self.execute(conn, f"CREATE INDEX ON {seen} (h)")
        stage = self.stage_name(target)
        self.execute(conn, f"DROP TABLE IF EXISTS pg_temp.{stage}")
        self.execute(
            conn,
            f"CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {self.qualified(target.table)} WITH NO DATA",
        )

    def _copy(self, conn: Any, into: str, target: Target, rows: Sequence[Row]) -> None:
        cols = ", ".join(self.quote(c) for c in target.columns)
        with conn.cursor() as cur, cur.copy(self.plain(f"COPY {into} ({cols}) FROM STDIN")) as copy:
            write = copy.write_row
            for row in rows:
                write(row)

    def write(self, conn: Any, target: Target, rows: list[Row], *, fresh: bool, mode: Mode) -> Outcome:
        if fresh or mode in ("insert", "replace"):
            self._copy(conn, self.qualified(target.table), target, rows)
            return Outcome(created=len(rows))
        stage = self.stage_name(target)
        self.execute(conn, f"TRUNCATE {stage}")
        self._copy(conn, stage, target, rows)
        if not target.key:
            created = self.execute(conn, self._merge_missing(target)).rowcount
            return Outcome(created=created, unchanged=len(rows) - created)
        if mode == "skip":
            created = self.execute(conn, self._merge(target, update=False)).rowcount
            return Outcome(created=created, unchanged=len(rows) - created)
        created, touched = self.execute(conn, self._merge(target, update=True)).fetchone()
        return Outcome(created=created, updated=touched - created, unchanged=len(rows) - touched)

    def _merge(self, target: Target, *, update: bool) -> str:
        key = "merge" if update else "merge_skip"
        if key in target.statements:
            return str(target.statements[key])
        q = self.quote
        table = self.qualified(target.table)
        cols = ", ".join(q(c) for c in target.columns)
        conflict = ", ".join(q(c) for c in target.key)
        insert = f"INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {self.stage_name(target)}"
        updatable = target.updatable
        if update and updatable:
            kinds = dict(zip(target.columns, target.kinds, strict=True))
            sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in updatable)
            old = ", ".join(self._compared("t", c, kinds[c]) for c in updatable)
            new = ", ".join(self._compared("EXCLUDED", c, kinds[c]) for c in updatable)
            sql = (
                f"WITH written AS ({insert} ON CONFLICT ({conflict}) DO UPDATE SET {sets} "
                f"WHERE ROW({old}) IS DISTINCT FROM ROW({new}) "
                "RETURNING (t.xmax = 0) AS created) "
                "SELECT count(*) FILTER (WHERE created), count(*) FROM written"
            )
        elif update:
            sql = (
                f"WITH written AS ({insert} ON CONFLICT ({conflict}) DO NOTHING "
                "RETURNING true AS created) SELECT count(*), count(*) FROM written"
            )
        else:
            sql = f"{insert} ON CONFLICT ({conflict}) DO NOTHING"
        target.statements[key] = sql
        return sql

    def finish_table(self, conn: Any, target: Target, *, fresh: bool, in_transaction: bool) -> None:
        if not target.key and not fresh:
            self.execute(conn, f"DROP TABLE IF EXISTS pg_temp.{self._seen(target)}")

    def _merge_missing(self, target: Target) -> str:
        """Insert the stage rows whose hash is not among the table's; remember the new ones."""
        if "merge_missing" not in target.statements:
            cols = ", ".join(self.quote(c) for c in target.columns)
            table, seen = self.qualified(target.table), self._seen(target)
            hashed = self._row_hash("s", target)
            target.statements["merge_missing"] = (
                f"WITH added AS (INSERT INTO {table} AS t ({cols}) SELECT {cols} "
                f"FROM {self.stage_name(target)} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {seen} x WHERE x.h = {hashed}) "
                f"RETURNING {self._row_hash('t', target)} AS h) "
                f"INSERT INTO {seen} (h) SELECT h FROM added"
            )
        return str(target.statements["merge_missing"])

    # -- after the load ----------------------------------------------------------------------

    def add_foreign_key_if_sound(self, conn: Any, sql: str) -> bool:
        """ADD CONSTRAINT checks every row in one pass (as pg_restore's does): the search for
        orphans, a second pass, is needed only when it fails."""
        self.savepoint(conn, "rowvault_fk")
        try:
            self.execute(conn, sql)
        except pgerrors.ForeignKeyViolation:
            self.rollback_savepoint(conn, "rowvault_fk")
            self.release_savepoint(conn, "rowvault_fk")
            return False
        except psycopg.Error:  # (a resumed run finds it there): the transaction stays usable
            with suppress(psycopg.Error):
                self.rollback_savepoint(conn, "rowvault_fk")
                self.release_savepoint(conn, "rowvault_fk")
            raise
        self.release_savepoint(conn, "rowvault_fk")
        return True

    def advance_sequences(self, conn: Any, tables: Sequence[sa.Table]) -> None:
        for table in tables:
            for column in table.columns:
                if not isinstance(column.type, sa.Integer):
                    continue
                seq = self.execute(
                    conn,
                    "SELECT pg_get_serial_sequence(%s, %s)",
                    [self.plain(self.qualified(table)), column.name],  # values: plain names
                ).fetchone()[0]
                if seq is None:
                    continue
                col = self.quote(column.name)
                self.execute(
                    conn,
                    f"SELECT setval(%s, m) FROM (SELECT max({col}) AS m "
                    f"FROM {self.qualified(table)}) x "
                    "WHERE m IS NOT NULL AND m > COALESCE(pg_sequence_last_value(%s::regclass), 0)",
                    [seq, seq],
                )

    def stream(self, conn: Any, sql: str, batch: int) -> Any:
        with conn.cursor(name="rowvault_backup") as cur:
            cur.itersize = batch
            cur.execute(self.plain(sql))
            while rows := cur.fetchmany(batch):
                yield rows
