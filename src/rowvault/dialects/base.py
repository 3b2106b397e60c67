"""What every engine's bulk path provides, and the shared `executemany` implementation.

rowvault writes through the DBAPI driver, not SQLAlchemy's per-row processing: statements are
built with SQLAlchemy Core, compiled once per table with a positional paramstyle, and run with
`executemany` on the raw connection in autocommit mode with explicit transaction statements
(so a batch is exactly one transaction, and a dry run is one rolled-back transaction with a
savepoint per batch).

SQL text, one rule: rowvault's statements are text in the driver's paramstyle, as SQLAlchemy
compiles them and `quote` quotes - which on PostgreSQL and MySQL doubles every `%` of a name
(`pct%s` is `"pct%%s"`). A driver undoes that only when it is given parameters, so a statement
run without them goes through `execute` (or `plain`), which undoes it once. Text handed back
to SQLAlchemy (`literal_column`) or sent as a value is `plain`: SQLAlchemy escapes it itself.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..codec import ColumnType, Kind

Row = tuple[Any, ...]
Mode = str  # "upsert" | "insert" | "skip" | "replace"


@dataclass
class Outcome:
    """What one successful batch did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class Target:
    """One table as the bulk path writes it: which columns, in which order, keyed how."""

    table: sa.Table
    columns: list[str]
    types: list[ColumnType]
    key: list[str]
    held_back: frozenset[str] = frozenset()
    """Foreign-key columns filled in after the load (cycles): an upsert leaves them alone."""
    statements: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.table.name)  # a plain str: SQLAlchemy's quoted_name trips orjson

    @property
    def kinds(self) -> list[Kind]:
        return [t.kind for t in self.types]

    @property
    def key_index(self) -> list[int]:
        return [self.columns.index(k) for k in self.key]

    @property
    def updatable(self) -> list[str]:
        return [c for c in self.columns if c not in self.key and c not in self.held_back]


class Dialect:
    """Base class; one subclass per engine family."""

    name: ClassVar[str]
    paramstyle: ClassVar[str] = "format"
    begin_sql: ClassVar[str] = "BEGIN"
    max_params: ClassVar[int] = 30000
    transactional_ddl: ClassVar[bool] = True
    pipelined: ClassVar[bool] = True
    """Write on a second thread while the next batch is prepared: worth it when the
    database works in another process (the driver releases the GIL while it waits)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sa_dialect = engine.dialect
        positional = copy.copy(engine.dialect)
        positional.paramstyle = self.paramstyle
        positional.positional = True
        self._positional = positional
        self.quote = engine.dialect.identifier_preparer.quote
        self._escapes_percent = self.quote("%") != self.quote("%").replace("%%", "%")
        self._pooled: dict[int, Any] = {}
        """The pool's record of each connection this dialect made, by the driver connection."""

    # -- connections and transactions ------------------------------------------------------

    parallel_lanes: ClassVar[bool] = False
    """Whether batches of one table written on several connections at once, commits in
    order (`load.lanes`), get through faster: the server then works on several cores."""

    def connect(self) -> Any:
        """A raw DBAPI connection in autocommit mode, set up for bulk work."""
        pooled = self.engine.raw_connection()
        conn = pooled.driver_connection
        self._pooled[id(conn)] = pooled
        self.prepare(conn)
        return conn

    def release(self, conn: Any) -> None:
        """Close the connection: its session settings must not leak into the app's pool."""
        pooled = self._pooled.pop(id(conn), None)
        if pooled is not None:
            pooled.invalidate()

    def limit_lock_waits(self, conn: Any, seconds: float) -> None:
        """Make a statement of this connection fail once it has waited `seconds` for another
        connection's lock (what breaks a wait between two lanes, `load.lanes`)."""

    def prepare(self, conn: Any) -> None:
        raise NotImplementedError

    def plain(self, sql: str) -> str:
        """`sql` as the server must read it when no parameters go with it (see the module
        docstring): the `%` that the paramstyle escapes, unescaped once."""
        return sql.replace("%%", "%") if self._escapes_percent else sql

    def execute(self, conn: Any, sql: str, params: Sequence[Any] | None = None) -> Any:
        cur = conn.cursor()
        if params is None:
            cur.execute(self.plain(sql))
        else:
            cur.execute(sql, params)
        return cur

    def begin(self, conn: Any) -> None:
        self.execute(conn, self.begin_sql)

    def commit(self, conn: Any) -> None:
        self.execute(conn, "COMMIT")

    def rollback(self, conn: Any) -> None:
        self.execute(conn, "ROLLBACK")

    def savepoint(self, conn: Any, name: str) -> None:
        self.execute(conn, f"SAVEPOINT {name}")

    def release_savepoint(self, conn: Any, name: str) -> None:
        self.execute(conn, f"RELEASE SAVEPOINT {name}")

    def rollback_savepoint(self, conn: Any, name: str) -> None:
        self.execute(conn, f"ROLLBACK TO SAVEPOINT {name}")

    # -- errors ----------------------------------------------------------------------------

    def is_record_error(self, exc: BaseException) -> bool:
        """True when the database refused the data (constraint, type), not the connection."""
        raise NotImplementedError

    def error_message(self, exc: BaseException, target: Target | None = None) -> str:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    # -- statements ------------------------------------------------------------------------

    def compile(self, stmt: Any) -> tuple[str, list[str]]:
        compiled = stmt.compile(dialect=self._positional)
        return compiled.string, list(compiled.positiontup or [])

    def qualified(self, table: sa.Table) -> str:
        return self.quote(table.name)

    def insert_sql(self, target: Target) -> str:
        if "insert" not in target.statements:
            stmt = sa.insert(target.table).values(
                {c: sa.bindparam(f"p_{i}") for i, c in enumerate(target.columns)}
            )
            sql, order = self.compile(stmt)
            assert order == [f"p_{i}" for i in range(len(target.columns))], order
            target.statements["insert"] = sql
        return str(target.statements["insert"])

    def upsert_sql(self, target: Target) -> str:
        raise NotImplementedError

    def count_existing(self, conn: Any, target: Target, rows: Sequence[Row]) -> int:
        """How many of the batch's keys are already in the table."""
        if not rows:
            return 0
        idx = target.key_index
        keys = {tuple(r[i] for i in idx) for r in rows}
        mark = "?" if self.paramstyle == "qmark" else "%s"
        cols = ", ".join(self.quote(k) for k in target.key)
        one = f"({', '.join([mark] * len(idx))})" if len(idx) > 1 else mark
        lhs = f"({cols})" if len(idx) > 1 else cols
        found = 0
        key_list = list(keys)
        step = max(1, self.max_params // len(idx))
        for start in range(0, len(key_list), step):
            chunk = key_list[start : start + step]
            sql = (
                f"SELECT count(*) FROM {self.qualified(target.table)} "
                f"WHERE {lhs} IN ({', '.join([one] * len(chunk))})"
            )
            params = [v for key in chunk for v in key]
            found += int(self.execute(conn, sql, params).fetchone()[0])
        return found

    # -- tables without a key: rows are counted, not matched ---------------------------------

    def count_copies(self, conn: Any, target: Target, rows: Sequence[Row]) -> list[int]:
        """How many rows equal to each of `rows` (distinct rows) the table holds, inside the
        caller's transaction.

        The rows go into a temporary table through the engine's bulk path, one pattern of
        NULLs at a time, and one join counts them: `=` on the other columns, `IS NULL` on those,
        so SQLite and MariaDB look the rows up in the match index (`prepare_table`) and
        PostgreSQL hashes them (with no filter on the temporary table, whose size the planner
        then sees). A value a column cannot take is refused here, as the table would refuse it."""
        copies = self._copies_target(target)
        self.execute(conn, str(copies.statements["create"]))
        by_nulls: dict[tuple[int, ...], list[Row]] = {}
        for i, row in enumerate(rows):
            nulls = tuple(p for p, v in enumerate(row) if v is None) if None in row else ()
            by_nulls.setdefault(nulls, []).append((i, *row))
        found = [0] * len(rows)
        for nulls, staged in by_nulls.items():
            self.execute(conn, f"DELETE FROM {self.qualified(copies.table)}")
            self.write(conn, copies, staged, fresh=True, mode="insert")
            # The size in the text: a driver that prepares what it runs often (psycopg) then
            # keeps one plan per size, not the first batch's plan for every batch.
            sql = f"{self._count_sql(target, copies, nulls)} /* {len(staged)} rows */"
            for i, n in self.execute(conn, sql).fetchall():
                found[int(i)] = int(n)
        return found

    def _copies_target(self, target: Target) -> Target:
        """The temporary table of one batch's distinct rows: a row number, then the table's
        columns with their exact types (it is made from the table itself)."""
        if "copies" not in target.statements:
            number = _free_name(target.columns, "rowvault_row")
            table = target.table
            copies = sa.Table(
                f"rowvault_copies_{target.name}"[:60],
                sa.MetaData(),
                sa.Column(number, sa.Integer),
                *(sa.Column(c, table.c[c].type) for c in target.columns),
            )
            staged = Target(copies, [number, *target.columns], [ColumnType("integer"), *target.types], [])
            cols = ", ".join(self.quote(c) for c in target.columns)
            staged.statements["create"] = (
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.qualified(copies)} AS "
                f"SELECT 0 AS {self.quote(number)}, {cols} FROM {self.qualified(table)} WHERE 1 = 0"
            )
            target.statements["copies"] = staged
        copies_target: Target = target.statements["copies"]
        return copies_target

    def _count_sql(self, target: Target, copies: Target, nulls: tuple[int, ...]) -> str:
        key = "copies:" + ",".join(map(str, nulls))
        if key not in target.statements:
            t, b = target.table, copies.table
            number = b.c[copies.columns[0]]
            same = [
                t.c[c].is_(None)
                if p in nulls
                else self.comparable(t.c[c], kind) == self.comparable(b.c[c], kind)
                for p, (c, kind) in enumerate(zip(target.columns, target.kinds, strict=True))
            ]
            stmt = sa.select(number, sa.func.count()).select_from(b.join(t, sa.and_(*same))).group_by(number)
            target.statements[key] = self.compile(stmt)[0]
        return str(target.statements[key])

    def insert_missing_sql(self, target: Target) -> tuple[str, list[int]]:
        """An INSERT of a row unless an identical one exists, for tables without a key. The
        write path no longer uses it (rows are counted: `count_copies`); MySQL's packet-size
        check still measures the longest statement a record may go in with it."""
        if "insert_missing" not in target.statements:
            table = target.table
            values = [sa.bindparam(f"v_{i}", type_=table.c[c].type) for i, c in enumerate(target.columns)]
            same = [
                self.comparable(table.c[c], kind).is_not_distinct_from(
                    self.comparable(sa.bindparam(f"w_{i}", type_=table.c[c].type), kind)
                )
                for i, (c, kind) in enumerate(zip(target.columns, target.kinds, strict=True))
            ]
            exists = sa.exists().where(sa.and_(*same))
            stmt = sa.insert(table).from_select(target.columns, sa.select(*values).where(~exists))
            sql, order = self.compile(stmt)
            positions = [int(name.split("_")[1]) for name in order]
            target.statements["insert_missing"] = (sql, positions)
        sql, positions = target.statements["insert_missing"]
        return str(sql), list(positions)

    def comparable(self, expr: Any, kind: Kind) -> Any:
        return expr

    # -- writing ---------------------------------------------------------------------------

    def enforce_foreign_keys(self, conn: Any, on: bool) -> None:
        """Turn foreign-key checks on or off for this connection, where the engine allows it."""

    def add_foreign_key_if_sound(self, conn: Any, sql: str) -> bool:
        """Add a foreign key, letting the database check every row, if it does so in one pass;
        False when it does not, or a row has no parent (then nothing changed: the caller
        finds the orphans, rejects them and adds it)."""
        return False

    def add_checked_foreign_key(self, conn: Any, sql: str) -> None:
        """Add a foreign key whose rows were just checked (orphans rejected and removed)."""
        self.execute(conn, sql)

    def prepare_table(self, conn: Any, target: Target, *, fresh: bool, in_transaction: bool) -> None:
        """Set up per-table helpers before the first batch: for a table without a key that
        already holds rows, an index over its columns, so "is an identical row there?" is a
        lookup and not a scan of the table for every record. (Not inside a dry run's
        transaction on an engine whose DDL would commit it.)"""
        if self._wants_match_index(target, fresh, in_transaction):
            self.execute(conn, self.drop_match_index_sql(target))
            self.execute(conn, self.match_index_sql(target))

    def finish_table(self, conn: Any, target: Target, *, fresh: bool, in_transaction: bool) -> None:
        if self._wants_match_index(target, fresh, in_transaction):
            self.execute(conn, self.drop_match_index_sql(target))

    def _wants_match_index(self, target: Target, fresh: bool, in_transaction: bool) -> bool:
        return not target.key and not fresh and (self.transactional_ddl or not in_transaction)

    def match_index_name(self, target: Target) -> str:
        return self.quote(f"rowvault_match_{target.name}"[:60])

    def match_index_sql(self, target: Target) -> str:
        cols = ", ".join(self.quote(c) for c in target.columns)
        table = self.qualified(target.table)
        return f"CREATE INDEX {self.match_index_name(target)} ON {table} ({cols})"

    def drop_match_index_sql(self, target: Target) -> str:
        return f"DROP INDEX IF EXISTS {self.match_index_name(target)}"

    def write(self, conn: Any, target: Target, rows: list[Row], *, fresh: bool, mode: Mode) -> Outcome:
        """Write one batch inside the caller's transaction; raises on a refused record."""
        cur = conn.cursor()
        if fresh or mode in ("insert", "replace"):
            cur.executemany(self.insert_sql(target), rows)
            return Outcome(created=len(rows))
        if not target.key:  # the caller counts copies (`count_copies`) and inserts the missing
            raise ValueError(f"table {target.name!r} has no key: write it with mode='insert'")
        existing = self.count_existing(conn, target, rows)
        if mode == "skip":
            cur.executemany(self.skip_sql(target), rows)
            return Outcome(created=len(rows) - existing, unchanged=existing)
        cur.executemany(self.upsert_sql(target), rows)
        created = len(rows) - existing
        updated = max(0, min(existing, self.updated_count(cur.rowcount, len(rows), created)))
        return Outcome(created=created, updated=updated, unchanged=existing - updated)

    def skip_sql(self, target: Target) -> str:
        raise NotImplementedError

    def updated_count(self, rowcount: int, n: int, created: int) -> int:
        return rowcount - created

    def update_sql(self, target: Target, columns: Sequence[str]) -> str:
        """`UPDATE t SET columns WHERE key`, parameters: the columns' values, then the key."""
        table = target.table
        stmt = (
            sa.update(table)
            .values({c: sa.bindparam(f"s_{i}") for i, c in enumerate(columns)})
            .where(sa.and_(*(table.c[k] == sa.bindparam(f"k_{i}") for i, k in enumerate(target.key))))
        )
        sql, order = self.compile(stmt)
        expected = [f"s_{i}" for i in range(len(columns))] + [f"k_{i}" for i in range(len(target.key))]
        assert order == expected, order
        return sql

    def run_updates(self, conn: Any, sql: str, params: list[Row]) -> None:
        conn.cursor().executemany(sql, params)

    def fill_held(self, conn: Any, target: Target, columns: Sequence[str], params: list[Row]) -> None:
        """Write the foreign-key values held back for cycles: each of `params` is a row's
        values of `columns`, then its key."""
        self.run_updates(conn, self.update_sql(target, columns), params)

    def clear_columns(self, conn: Any, table: sa.Table, columns: Sequence[str]) -> None:
        sets = ", ".join(f"{self.quote(c)} = NULL" for c in columns)
        self.execute(conn, f"UPDATE {self.qualified(table)} SET {sets}")

    def delete_all(
        self, conn: Any, table: sa.Table, *, unless_referenced_by: Sequence[sa.ForeignKeyConstraint] = ()
    ) -> None:
        """Delete the table's rows, but those a row still refers to through one of the foreign
        keys `unless_referenced_by` (reflected: `table` is the one they refer to)."""
        if not unless_referenced_by:
            self.execute(conn, f"DELETE FROM {self.qualified(table)}")
            return
        kept = []
        for fk in unless_referenced_by:
            child = fk.table.alias("rowvault_child")  # an alias: the table may refer to itself
            kept.append(
                sa.exists().where(*(child.c[e.parent.name] == table.c[e.column.name] for e in fk.elements))
            )
        stmt = sa.delete(table).where(~sa.or_(*kept))
        self.execute(conn, str(stmt.compile(dialect=self.sa_dialect)))

    # -- after the load ----------------------------------------------------------------------

    def advance_sequences(self, conn: Any, tables: Sequence[sa.Table]) -> None:
        """Move auto-increment counters past the highest restored key."""

    def table_is_empty(self, conn: Any, table: sa.Table) -> bool:
        cur = self.execute(conn, f"SELECT 1 FROM {self.qualified(table)} LIMIT 1")
        return cur.fetchone() is None

    # -- backup ----------------------------------------------------------------------------

    def begin_snapshot(self, conn: Any) -> None:
        self.begin(conn)

    def stream(self, conn: Any, sql: str, batch: int) -> Iterator[list[Row]]:
        cur = conn.cursor()
        cur.execute(self.plain(sql))
        while rows := cur.fetchmany(batch):
            yield rows

    def json_columns(self, conn: Any) -> set[tuple[str, str]]:
        """Columns that hold JSON although reflection says otherwise (MariaDB)."""
        return set()


def _free_name(taken: Sequence[str], name: str) -> str:
    """`name`, with underscores added until no column of the table has it."""
    while name in taken:
        name += "_"
    return name
