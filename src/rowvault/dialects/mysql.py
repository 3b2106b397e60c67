"""MySQL and MariaDB: PyMySQL's `executemany`, which folds INSERT … ON DUPLICATE KEY UPDATE
into multi-row statements of up to about a megabyte each; plain inserts (tables rowvault
created or emptied, `insert` mode) go through LOAD DATA LOCAL INFILE (mysql_load).

What the server cannot take is refused before it is sent, as a record error: a NaN or an
infinity (its DOUBLE has neither; PyMySQL raises), a record whose statement would be larger
than `max_allowed_packet` (the server drops the connection). MariaDB keeps JSON as text, so
an upsert compares JSON values compacted: a document written with other spacing is unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, ClassVar

import pymysql
import sqlalchemy as sa
from pymysql.constants import CLIENT
from sqlalchemy.dialects import mysql

from ..codec import ColumnType, Kind
from .base import Dialect, Mode, Outcome, Row, Target
from .mysql_connection import GuardedConnection
from .mysql_load import LoadPath, nonfinite

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
_HELD = "rowvault_held"
HELD_SET_MIN = 64
"""Held-back keys of fewer rows than this are written row by row."""
_JSON_CHECK = re.compile(r"json_valid\(`?([^`)]+)`?\)", re.IGNORECASE)


_SHORT_KINDS = frozenset({"integer", "float", "boolean", "decimal", "date", "time", "datetime", "uuid"})
_LIMIT_MARGIN = 1024
"""Bytes of a packet kept for the statement around the values and the protocol."""
_PACKET_TOO_LARGE = 1153  # the server's own codes for what it would have refused
_ILLEGAL_VALUE = 1367


class Unsendable(pymysql.err.DataError):  # type: ignore[misc]  # PyMySQL is untyped
    """A value the server cannot take, found before it is sent: refused as the server would
    refuse it, a record error."""


def _text_size(rows: Sequence[Row], positions: list[int]) -> int:
    """The characters and bytes of the batch's long columns (C speed; TypeError if a value
    has no length)."""
    return sum(sum(map(len, filter(None, map(itemgetter(i), rows)))) for i in positions)


def _maybe_too_large(rows: Sequence[Row], positions: list[int], budget: int) -> list[Row]:
    """The records whose long values, escaped in 4-byte characters, might exceed `budget`."""
    if not positions:
        return []
    lengths = [
        [len(v) if isinstance(v, (str, bytes)) else 64 for v in map(itemgetter(i), rows)] for i in positions
    ]
    return [
        row
        for row, size in zip(rows, map(sum, zip(*lengths, strict=True)), strict=True)
        if 4 * size >= budget
    ]


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
    parallel_lanes: ClassVar[bool] = False
    """Measured: two LOAD DATA into one table with an AUTO_INCREMENT key (every integer key
    rowvault creates) took as long as one (4.4 s against 4.3 s for 400,000 rows): under
    innodb_autoinc_lock_mode 1, MariaDB's default, a bulk insert holds the table's AUTO-INC
    lock to its end. (Without the counter: 3.4 s against 4.6 s.)"""

    _found_rows = False
    _load: LoadPath | None = None
    _packet = 0
    """The server's max_allowed_packet, read once per connection."""

    @property
    def _mariadb(self) -> bool:
        return bool(getattr(self.sa_dialect, "is_mariadb", False))

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
        cur.execute("SELECT @@max_allowed_packet")
        row = cur.fetchone()
        # MySQL's smallest default (4 MiB) when the server does not say
        self._packet = int(row[0]) if row and row[0] else 4 << 20
        folded = pymysql.cursors.Cursor.max_stmt_length
        if self._packet < 2 * folded:  # executemany's multi-row statements must fit too
            small = {"max_stmt_length": max(1, self._packet // 2)}
            conn.cursorclass = type("SmallStatements", (pymysql.cursors.Cursor,), small)

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
        self.refuse_unsendable(conn, target, rows)
        load = self._load
        plain_insert = fresh or mode in ("insert", "replace")
        if (
            load is not None
            and plain_insert
            and load.fits(target, rows, self.counter_position(conn, target))
            and self._load_batch(conn, load, target, rows)
        ):
            return Outcome(created=len(rows))
        return super().write(conn, target, rows, fresh=fresh, mode=mode)

    def counter_position(self, conn: Any, target: Target) -> int | None:
        """Where the table's AUTO_INCREMENT column is among the target's columns (once per table;
        see `mysql_load.RENUMBERS_ZERO`)."""
        if "counter" not in target.statements:
            cur = self.execute(
                conn,
                "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name = %s AND extra LIKE %s",
                [target.name, "%%auto_increment%%"],
            )
            row = cur.fetchone()
            name = str(row[0]) if row else None
            target.statements["counter"] = target.columns.index(name) if name in target.columns else None
        position: int | None = target.statements["counter"]
        return position

    def refuse_unsendable(self, conn: Any, target: Target, rows: Sequence[Row]) -> None:
        """Raise Unsendable for a batch holding a value the server cannot take, before any of
        it is sent (the bisection then names the record)."""
        for i, kind in enumerate(target.kinds):
            if kind == "float" and (bad := nonfinite(rows, i)) is not None:
                raise Unsendable(
                    _ILLEGAL_VALUE,
                    f"column {target.columns[i]!r}: {bad} cannot be stored: MariaDB/MySQL DOUBLE "
                    "and FLOAT columns hold no NaN or infinity",
                )
        if not self._packet:
            return
        # The longest statement a record may go in; a table without a key sends it twice.
        sql, times = (self.upsert_sql(target), 1) if target.key else (self.insert_missing_sql(target)[0], 2)
        room = (self._packet - len(sql) - _LIMIT_MARGIN) // times
        positions = [i for i, kind in enumerate(target.kinds) if kind not in _SHORT_KINDS]
        budget = room - 32 * len(target.columns)  # what the short values may take, at most
        try:
            if 4 * _text_size(rows, positions) < budget:
                return  # even escaped, in 4-byte characters, every record fits
        except TypeError:
            pass
        for row in _maybe_too_large(rows, positions, budget):
            size = len(conn.escape(tuple(row)).encode(conn.encoding, "surrogateescape"))
            if size > room:
                size *= times
                raise Unsendable(
                    _PACKET_TOO_LARGE,
                    f"the record is {size:,} bytes as an INSERT statement, more than the "
                    f"server's max_allowed_packet ({self._packet:,} bytes) lets through; "
                    "raise max_allowed_packet on the server to restore it",
                )

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

    def fill_held(self, conn: Any, target: Target, columns: Sequence[str], params: list[Row]) -> None:
        """One UPDATE joined to a temporary table of the rows' values (a multi-row INSERT):
        PyMySQL sends an executemany of UPDATEs one statement per row, which took 1.2 s
        for the 80,000 held-back keys of 1M demo records. A key given twice keeps its last
        values, as the row-by-row updates did. Few rows (a part being bisected) go as those."""
        if len(params) < HELD_SET_MIN:
            super().fill_held(conn, target, columns, params)
            return
        q, table = self.quote, self.qualified(target.table)
        sets = [f"s{i}" for i in range(len(columns))]
        keys = [f"k{i}" for i in range(len(target.key))]
        picks = [f"{q(c)} AS {s}" for c, s in zip(columns, sets, strict=True)]
        picks += [f"{q(k)} AS {n}" for k, n in zip(target.key, keys, strict=True)]
        last = {tuple(p[len(sets) :]): p for p in params}
        self.execute(conn, f"DROP TEMPORARY TABLE IF EXISTS {_HELD}")
        self.execute(
            conn, f"CREATE TEMPORARY TABLE {_HELD} AS SELECT {', '.join(picks)} FROM {table} WHERE 1 = 0"
        )
        marks = ", ".join(["%s"] * (len(sets) + len(keys)))
        conn.cursor().executemany(
            f"INSERT INTO {_HELD} ({', '.join(sets + keys)}) VALUES ({marks})", list(last.values())
        )
        on = " AND ".join(f"t.{q(k)} = h.{n}" for k, n in zip(target.key, keys, strict=True))
        assign = ", ".join(f"t.{q(c)} = h.{s}" for c, s in zip(columns, sets, strict=True))
        self.execute(conn, f"UPDATE {table} t JOIN {_HELD} h ON {on} SET {assign}")
        self.execute(conn, f"DROP TEMPORARY TABLE {_HELD}")

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

    def _wants_match_index(self, target: Target, fresh: bool, in_transaction: bool) -> bool:
        """Not for a table of floats only: InnoDB's index would leave them out (and hold
        nothing)."""
        indexable = any(t.kind != "float" for t in target.types)
        return indexable and super()._wants_match_index(target, fresh, in_transaction)

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
        if kind == "float":
            return sa.cast(expr, mysql.CHAR())
        if kind == "json" and self._mariadb:
            return sa.func.IF(sa.func.JSON_VALID(expr), sa.func.JSON_COMPACT(expr), expr)
        return expr

    def _compact(self, ref: str) -> str:
        """MariaDB's JSON (text) compacted for comparing; text that is not JSON as it is (a
        JSON function's complaint about it is an error under the strict sql_mode)."""
        return f"IF(JSON_VALID({ref}), JSON_COMPACT({ref}), {ref})"

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
        kinds = dict(zip(target.columns, target.kinds, strict=True))
        return stmt.on_duplicate_key_update([guard, *((c, self._value(table, c, kinds[c])) for c in columns)])

    def _value(self, table: sa.Table, column: str, kind: Kind) -> Any:
        """What an upsert sets: the new value, except that MariaDB's JSON text equal as JSON
        to the stored one keeps the stored one (so the row is unchanged, not rewritten)."""
        if kind != "json" or not self._mariadb:
            return self._new(table, column)
        old, new = self.quote(column), f"VALUES({self.quote(column)})"
        same = f"{self._compact(old)} <=> {self._compact(new)}"
        return sa.literal_column(self.plain(f"IF({same}, {old}, {new})"), type_=table.c[column].type)

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
