"""MySQL and MariaDB: PyMySQL's `executemany`, which folds INSERT … ON DUPLICATE KEY UPDATE
into multi-row statements of up to about a megabyte each; plain inserts (tables rowvault
created or emptied, `insert` mode) go through LOAD DATA LOCAL INFILE (mysql_load)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import pymysql
import sqlalchemy as sa
from pymysql.constants import CLIENT
from sqlalchemy.dialects import mysql

from ..codec import ColumnType, Kind
from .base import Dialect, Mode, Outcome, Row, Target
from .mysql_connection import GuardedConnection
from .mysql_load import LoadPath

log = logging.getLogger("rowvault")

# Server errors that mean "this data does not fit", not "the connection or server failed".
_RECORD_ERRORS = {
    1048,  # column cannot be null
    1062,  # duplicate entry
    1136,  # column count does not match
    1242,  # the unique-key guard of _on_duplicate
    1264,  # out of range
    1265,  # data truncated
    1292,  # incorrect datetime/date/time value
    1366,  # incorrect value for column
    1406,  # data too long
    1416,  # cannot get geometry object
    1451,  # a child row references it
    1452,  # parent row missing
    1690,  # value out of range
    3140,  # invalid JSON
    3819,  # check constraint (MySQL)
    4025,  # check constraint (MariaDB), e.g. json_valid
}
_UNIQUE_CONFLICT = 1242  # what the guard in _on_duplicate raises
_LOCAL_REFUSED = {1148, 2068, 3948, 4166}  # the server (or its settings) does not allow LOAD DATA LOCAL
_LOAD_SAVEPOINT = "rowvault_load"
_JSON_CHECK = re.compile(r"json_valid\(`?([^`)]+)`?\)", re.IGNORECASE)


def _long(ctype: ColumnType) -> bool:
    """TEXT and BLOB columns (and long VARCHARs) are indexed by a prefix."""
    if ctype.kind not in ("string", "json", "bytes", "other"):
        return False
    return ctype.length is None or ctype.length > 64


class MySQLDialect(Dialect):
    name: ClassVar[str] = "mysql"
    begin_sql: ClassVar[str] = "START TRANSACTION"
    max_params: ClassVar[int] = 20000
    transactional_ddl: ClassVar[bool] = False

    _found_rows = False
    _load: LoadPath | None = None

    def prepare(self, conn: Any) -> None:
        self._found_rows = bool(conn.client_flag & CLIENT.FOUND_ROWS)
        self._close_load()
        conn._local_infile = False  # PyMySQL's own transfer sends any file the server names
        if isinstance(conn, GuardedConnection) and conn.offers_local_files:  # engines rowvault made
            self._load = LoadPath(self.quote, conn.escape)
        conn.autocommit(True)
        cur = conn.cursor()
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(
            "SET SESSION sql_mode = CONCAT_WS(',', @@sql_mode, "
            "'STRICT_TRANS_TABLES', 'NO_AUTO_VALUE_ON_ZERO')"
        )

    def add_checked_foreign_key(self, conn: Any, sql: str) -> None:
        """With foreign_key_checks on, InnoDB adds a foreign key by copying the whole table
        (measured: 1.7 s for 80,000 rows); off, it adds it in place. The rows were checked
        just before, so checking them again here would only cost the copy."""
        self.execute(conn, "SET SESSION foreign_key_checks = 0")
        try:
            self.execute(conn, sql)
        finally:
            self.execute(conn, "SET SESSION foreign_key_checks = 1")

    def release(self, conn: Any) -> None:
        self._close_load()
        super().release(conn)

    def _close_load(self) -> None:
        if self._load is not None:
            self._load.close()
            self._load = None

    def write(self, conn: Any, target: Target, rows: list[Row], *, fresh: bool, mode: Mode) -> Outcome:
        load = self._load
        plain_insert = fresh or mode in ("insert", "replace")
        if (
            load is not None
            and plain_insert
            and load.fits(target, rows)
            and self._load_batch(conn, load, target, rows)
        ):
            return Outcome(created=len(rows))
        return super().write(conn, target, rows, fresh=fresh, mode=mode)

    def _load_batch(self, conn: Any, load: LoadPath, target: Target, rows: list[Row]) -> bool:
        """LOAD DATA the batch; True if the server took every row without a warning, else
        False with nothing of it left (the caller then writes it with executemany)."""
        if not load.spool(target, rows):
            return False
        self.savepoint(conn, _LOAD_SAVEPOINT)
        try:
            with conn.sending(load.path):
                cur = self.execute(conn, load.statement(target))
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            if code not in _LOCAL_REFUSED and not self.is_record_error(exc):
                raise
            self.rollback_savepoint(conn, _LOAD_SAVEPOINT)
            if code in _LOCAL_REFUSED:
                load.available = False
                log.info("[restore] LOAD DATA LOCAL is not allowed here (%s); using INSERT", exc.args[-1])
            return False
        if cur.rowcount == len(rows) and not cur.warning_count:
            self.release_savepoint(conn, _LOAD_SAVEPOINT)
            return True
        self.rollback_savepoint(conn, _LOAD_SAVEPOINT)
        return False

    def begin_snapshot(self, conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def is_record_error(self, exc: BaseException) -> bool:
        if isinstance(exc, (pymysql.err.IntegrityError, pymysql.err.DataError)):
            return True
        if isinstance(exc, pymysql.err.MySQLError) and exc.args:
            return exc.args[0] in _RECORD_ERRORS
        return isinstance(exc, (TypeError, ValueError))  # a value PyMySQL cannot escape

    def error_message(self, exc: BaseException, target: Target | None = None) -> str:
        if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
            text = str(exc.args[1])
            if exc.args[0] == _UNIQUE_CONFLICT:
                return "conflicts with another row on a unique key (not the primary key)"
            return text
        return super().error_message(exc)

    def match_index_sql(self, target: Target) -> str:
        # Key prefixes keep long text and blob columns within InnoDB's key length.
        parts = [
            f"{self.quote(c)}(64)" if _long(t) else self.quote(c)
            for c, t in zip(target.columns, target.types, strict=True)
            if t.kind != "float"
        ][:16]
        table = self.qualified(target.table)
        return f"CREATE INDEX {self.match_index_name(target)} ON {table} ({', '.join(parts)})"

    def drop_match_index_sql(self, target: Target) -> str:
        table = self.qualified(target.table)
        return f"DROP INDEX IF EXISTS {self.match_index_name(target)} ON {table}"

    def comparable(self, expr: Any, kind: Kind) -> Any:
        # A FLOAT column holds single precision: compare as MySQL prints it, not as a double.
        return sa.cast(expr, mysql.CHAR()) if kind == "float" else expr

    def _insert(self, target: Target) -> Any:
        return mysql.insert(target.table).values(
            {c: sa.bindparam(f"p_{i}") for i, c in enumerate(target.columns)}
        )

    def _on_duplicate(self, target: Target, stmt: Any, columns: list[str]) -> Any:
        """ON DUPLICATE KEY UPDATE fires on *any* unique key. The first assignment keeps the
        row's key if the conflict was on it, and otherwise evaluates a subquery that returns
        two rows - an error (reported as a unique conflict) instead of silently merging two
        different records. (NULL would not do: MySQL turns it into 0 for AUTO_INCREMENT.)"""
        table, first = target.table, target.key[0]
        same_key = sa.and_(*(table.c[k].is_not_distinct_from(self._new(table, k)) for k in target.key))
        ref = self.plain(f"{self.quote(table.name)}.{self.quote(first)}")  # SQLAlchemy escapes it
        # Two rows of the key column itself: an error, and of the key's type (MariaDB checks).
        fail: Any = sa.literal_column(f"(SELECT {ref} UNION ALL SELECT {ref})")
        guard = (first, sa.case((same_key, table.c[first]), else_=fail))
        return stmt.on_duplicate_key_update([guard, *((c, self._new(table, c)) for c in columns)])

    def _new(self, table: sa.Table, column: str) -> Any:
        """The value the row came with, `VALUES(column)`: SQLAlchemy's `stmt.inserted` escapes a
        `%` in the name twice (it quotes the name, then escapes it again as literal text)."""
        text = self.plain(f"VALUES({self.quote(column)})")
        return sa.literal_column(text, type_=table.c[column].type)

    def upsert_sql(self, target: Target) -> str:
        if "upsert" not in target.statements:
            stmt = self._insert(target)
            stmt = self._on_duplicate(target, stmt, target.updatable)
            target.statements["upsert"] = self.compile(stmt)[0]
        return str(target.statements["upsert"])

    def skip_sql(self, target: Target) -> str:
        if "skip" not in target.statements:
            stmt = self._on_duplicate(target, self._insert(target), [])
            target.statements["skip"] = self.compile(stmt)[0]
        return str(target.statements["skip"])

    def updated_count(self, rowcount: int, n: int, created: int) -> int:
        # Affected rows: 1 per insert, 2 per update, and with FOUND_ROWS 1 per unchanged row.
        if self._found_rows:
            return rowcount - n
        return (rowcount - created) // 2

    def json_columns(self, conn: Any) -> set[tuple[str, str]]:
        cur = conn.cursor()
        try:
            cur.execute(
                "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE()"
            )
        except pymysql.err.MySQLError:
            return set()
        found = set()
        for table, clause in cur.fetchall():
            match = _JSON_CHECK.search(clause or "")
            if match:
                found.add((table, match.group(1)))
        return found

    def advance_sequences(self, conn: Any, tables: Sequence[sa.Table]) -> None:
        for table in tables:
            auto = [c for c in table.columns if c.autoincrement is True and c.primary_key]
            if len(auto) != 1:
                continue
            col = self.quote(auto[0].name)
            cur = self.execute(conn, f"SELECT max({col}) FROM {self.qualified(table)}")
            highest = cur.fetchone()[0]
            if highest is None:
                continue
            cur = self.execute(
                conn,
                "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                [table.name],
            )
            counter = cur.fetchone()
            if counter and counter[0] is not None and counter[0] > highest:
                continue
            self.execute(conn, f"ALTER TABLE {self.qualified(table)} AUTO_INCREMENT = {int(highest) + 1}")

    def stream(self, conn: Any, sql: str, batch: int) -> Any:
        cur = conn.cursor(pymysql.cursors.SSCursor)
        cur.execute(self.plain(sql))
        try:
            while rows := cur.fetchmany(batch):
                yield rows
        finally:
            cur.close()
