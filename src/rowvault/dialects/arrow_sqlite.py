"""SQLite's columnar path: ADBC's SQLite driver binds Arrow batches in C (`adbc_ingest`).

Two SQLite libraries in one process: ADBC's driver carries its own copy of SQLite, and two
copies with the same file open can drop each other's POSIX locks (sqlite.org, "How To
Corrupt An SQLite Database File", §2.2.1). So the restore's own connection is closed and
SQLAlchemy's pool emptied before ADBC opens the file, and ADBC's connection is closed
before the row path opens the file again (`row_path`, `close`): never both at once.

Into a fresh table the batch is appended; into one that holds rows it goes into a
temporary stage table and one `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE` the row
differs merges it, counted as the row path counts an upsert.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from .arrow_base import ArrowWriter
from .base import Mode, Outcome

if TYPE_CHECKING:
    import pyarrow as pa

    from .sqlite import SQLiteDialect

STAGE = "rowvault_stage"


def database_file(dialect: Any) -> str | None:
    """The target's file, when ADBC can open the same one (not `:memory:` or a URI)."""
    url = dialect.engine.url
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:") or url.query:
        return None
    return str(name)


class SQLiteArrowWriter(ArrowWriter):
    dialect: SQLiteDialect
    own_connection = True

    def __init__(self, dialect: Any, target: Any, session: dict[str, Any]) -> None:
        super().__init__(dialect, target, session)
        self.ctx: Any = None
        self.adbc: Any = None

    def takes(self, *, fresh: bool, mode: Mode) -> bool:
        return bool(self.target.key) or fresh or mode in ("insert", "replace")

    # -- one connection at a time ------------------------------------------------------------

    def start(self, ctx: Any) -> None:
        """Close the restore's connection, open ADBC's (see the module docstring)."""
        self.ctx = ctx
        self._let_go_of_sqlite3()
        self._open_adbc()

    def _let_go_of_sqlite3(self) -> None:
        with suppress(Exception):
            self.dialect.release(self.ctx.conn)
        self.dialect.engine.dispose()

    def _open_adbc(self) -> None:
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        path = database_file(self.dialect)
        assert path is not None
        self.adbc = adbc_sqlite.connect(path)
        cur = self.adbc.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        checked = "foreign keys" not in self.session  # a new table's are checked once it is full
        cur.execute(f"PRAGMA foreign_keys = {'ON' if checked else 'OFF'}")
        self.adbc.commit()
        cur.close()

    def _close_adbc(self) -> None:
        adbc, self.adbc = self.adbc, None
        if adbc is not None:
            with suppress(Exception):
                adbc.rollback()
            adbc.close()

    def _reopen_sqlite3(self) -> None:
        ctx = self.ctx
        ctx.conn = ctx.tx.conn = self.dialect.connect()
        for setup in list(ctx.session.values()):
            setup(ctx.conn)

    @contextmanager
    def row_path(self) -> Iterator[None]:
        self._close_adbc()
        self._reopen_sqlite3()
        try:
            yield
        finally:
            self._let_go_of_sqlite3()
            self._open_adbc()

    def close(self) -> None:
        if self.ctx is None:
            return
        try:
            self._close_adbc()
        finally:
            self._reopen_sqlite3()
            self.ctx = None

    # -- writing ---------------------------------------------------------------------------

    def write(self, conn: Any, table: pa.Table, *, fresh: bool, mode: Mode) -> Outcome:
        adbc, target = self.adbc, self.target
        n = table.num_rows
        cur = adbc.cursor()
        try:
            if fresh or mode in ("insert", "replace"):
                cur.adbc_ingest(target.name, table, mode="append")
                adbc.commit()
                return Outcome(created=n)
            cur.adbc_ingest(STAGE, table, mode="replace", temporary=True)
            existing = int(self._one(cur, self._existing_sql()))
            cur.execute(self._merge_sql(update=mode != "skip"))
            changed = int(self._one(cur, "SELECT changes()"))
            adbc.commit()
        except BaseException:
            with suppress(Exception):
                adbc.rollback()
            raise
        finally:
            cur.close()
        created = n - existing
        if mode == "skip":
            return Outcome(created=created, unchanged=existing)
        updated = max(0, min(existing, changed - created))
        return Outcome(created=created, updated=updated, unchanged=existing - updated)

    @staticmethod
    def _one(cur: Any, sql: str) -> Any:
        cur.execute(sql)
        return cur.fetchone()[0]

    def _stage(self) -> Any:
        return sa.table(STAGE, *(sa.column(c) for c in self.target.columns), schema="temp")

    def _existing_sql(self) -> str:
        """How many of the table's rows have a key in the stage (as `count_existing`)."""
        target, quote = self.target, self.dialect.quote
        keys = ", ".join(quote(k) for k in target.key)
        lhs = f"({keys})" if len(target.key) > 1 else keys
        return (
            f"SELECT count(*) FROM main.{self.dialect.qualified(target.table)} "
            f"WHERE {lhs} IN (SELECT {keys} FROM temp.{quote(STAGE)})"
        )

    def _merge_sql(self, *, update: bool) -> str:
        key = "columns-merge" if update else "columns-merge-skip"
        target = self.target
        if key not in target.statements:
            table, stage = target.table, self._stage()
            chosen = sa.select(*(stage.c[c] for c in target.columns)).where(sa.true())
            stmt = sqlite.insert(table).from_select(target.columns, chosen)
            updatable = target.updatable if update else []
            if updatable:
                excluded = stmt.excluded
                kinds = dict(zip(target.columns, target.kinds, strict=True))
                compare = self.dialect.comparable
                stmt = stmt.on_conflict_do_update(
                    index_elements=target.key,
                    set_={c: excluded[c] for c in updatable},
                    where=sa.tuple_(*(compare(table.c[c], kinds[c]) for c in updatable)).is_distinct_from(
                        sa.tuple_(*(compare(excluded[c], kinds[c]) for c in updatable))
                    ),
                )
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=target.key)
            target.statements[key] = str(stmt.compile(dialect=self.dialect.sa_dialect))
        return str(target.statements[key])
