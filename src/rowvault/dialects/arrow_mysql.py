"""MySQL/MariaDB's columnar path: Arrow → tab-separated text (pyarrow's CSV writer, in C) →
`LOAD DATA LOCAL INFILE`, for plain inserts (a fresh table, `insert`, `replace`).

Every value is quoted and nothing is escaped (`ESCAPED BY ''`): a quote inside a value is
doubled, tabs and newlines stay inside their quotes, and NULL is the bare word NULL, which
the server reads as SQL NULL only unquoted. Binary columns come as hex text (made by
`load.columns`) and go through UNHEX(). The server turns what would be errors into warnings
for LOAD DATA, so a batch counts only if it took every row without one; else it is rolled
back and raised, and the row path writes the batch and names the bad record.

Into a table that holds rows (a table with a key) the batch is loaded the same way into a
temporary stage table of the target's columns, then merged by one `INSERT … SELECT … ON
DUPLICATE KEY UPDATE` whose update clause is the row path's own (`MySQLDialect.upsert_sql`:
a conflict on another unique key is an error, MariaDB's JSON equal as JSON is left as it
is), and counted as the row path counts: the rows whose key was there already, and the
server's affected rows (1 per insert, 2 per changed row, none for an unchanged one).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pymysql

from .arrow_base import ArrowWriter, BatchRefused
from .base import Mode, Outcome
from .mysql import _LOCAL_REFUSED, MySQLDialect
from .mysql_load import RENUMBERS_ZERO, load_statement

if TYPE_CHECKING:
    import pyarrow as pa

_TSV = pacsv.WriteOptions(include_header=False, quoting_style="all_valid", delimiter="\t", null_string="NULL")


class MySQLArrowWriter(ArrowWriter):
    dialect: MySQLDialect

    def __init__(self, dialect: Any, target: Any, session: dict[str, Any]) -> None:
        super().__init__(dialect, target, session)
        handle, self.path = tempfile.mkstemp(prefix="rowvault-columns-", suffix=".tsv")
        os.close(handle)
        self._staged_on: Any = None
        """The connection that holds the stage (a temporary table is the session's own)."""

    def takes(self, *, fresh: bool, mode: Mode) -> bool:
        load = self.dialect._load  # None: not a connection rowvault made, or LOCAL refused
        writes = fresh or mode in ("insert", "replace") or bool(self.target.key)
        return writes and load is not None and load.available

    def write(self, conn: Any, table: pa.Table, *, fresh: bool, mode: Mode) -> Outcome:
        if "bytes" in self.target.kinds:
            counter = self.dialect.counter_position(conn, self.target)
            if counter is not None and pc.any(pc.equal(table.column(counter), 0)).as_py():
                raise BatchRefused(RENUMBERS_ZERO)
        n = table.num_rows
        if fresh or mode in ("insert", "replace"):
            self._load(conn, table, None)
            return Outcome(created=n)
        stage = self._stage(conn)
        self.dialect.execute(conn, f"DELETE FROM {stage}")
        self._load(conn, table, stage)
        existing = int(self.dialect.execute(conn, self._existing_sql(stage)).fetchone()[0])
        created = n - existing
        if mode == "skip":
            self.dialect.execute(conn, self._merge_sql(stage, update=False))
            return Outcome(created=created, unchanged=existing)
        cur = self.dialect.execute(conn, self._merge_sql(stage, update=True))
        updated = max(0, min(existing, self.dialect.updated_count(cur.rowcount, n, created)))
        return Outcome(created=created, updated=updated, unchanged=existing - updated)

    def _load(self, conn: Any, table: pa.Table, into: str | None) -> None:
        """LOAD DATA the batch into the target (or its stage `into`); refused unless the server
        took every row without a warning."""
        pacsv.write_csv(table, self.path, _TSV)
        try:
            with conn.sending(self.path):
                cur = self.dialect.execute(conn, self._statement(conn, into))
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] in _LOCAL_REFUSED and self.dialect._load is not None:
                self.dialect._load.available = False
            raise
        if cur.rowcount != table.num_rows or cur.warning_count:
            raise BatchRefused(f"{cur.rowcount} of {table.num_rows} rows, {cur.warning_count} warnings")

    def _statement(self, conn: Any, into: str | None) -> str:
        target = self.target
        key = "columns-load" if into is None else "columns-load-stage"
        if key not in target.statements:
            target.statements[key] = load_statement(
                self.dialect.quote, conn.escape(self.path), target, "''", into
            )
        return str(target.statements[key])

    # -- a populated table: the stage and the merge ------------------------------------------

    def _stage(self, conn: Any) -> str:
        """The table's stage: a temporary table of the target's columns, their types and
        nothing else (no key, no check: what the target refuses, the merge is refused for).
        Made once per connection; a new connection (after a lost one) makes its own."""
        digest = hashlib.sha1(self.target.name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        stage = self.dialect.quote(f"rowvault_stage_{digest}")
        if self._staged_on is not conn:
            cols = ", ".join(self.dialect.quote(c) for c in self.target.columns)
            self.dialect.execute(
                conn,
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} "
                f"SELECT {cols} FROM {self.dialect.qualified(self.target.table)} LIMIT 0",
            )
            self._staged_on = conn
        return stage

    def _existing_sql(self, stage: str) -> str:
        """How many of the stage's rows have their key in the table (as `count_existing`)."""
        q, key = self.dialect.quote, self.target.key
        same = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)
        table = self.dialect.qualified(self.target.table)
        return f"SELECT count(*) FROM {stage} AS s WHERE EXISTS (SELECT 1 FROM {table} AS t WHERE {same})"

    def _merge_sql(self, stage: str, *, update: bool) -> str:
        """The row path's upsert (or skip), its rows from the stage instead of VALUES: the stage's
        columns renamed, so that the update clause's names are the target's alone."""
        q, target = self.dialect.quote, self.target
        key = "columns-merge" if update else "columns-merge-skip"
        if key in target.statements:
            return str(target.statements[key])
        row_path = self.dialect.upsert_sql(target) if update else self.dialect.skip_sql(target)
        clause = row_path[row_path.index(" ON DUPLICATE KEY UPDATE ") :]
        cols = ", ".join(q(c) for c in target.columns)
        renamed = ", ".join(f"{q(c)} AS rv_{i}" for i, c in enumerate(target.columns))
        picked = ", ".join(f"rv_{i}" for i in range(len(target.columns)))
        target.statements[key] = (
            f"INSERT INTO {self.dialect.qualified(target.table)} ({cols}) "
            f"SELECT {picked} FROM (SELECT {renamed} FROM {stage}) AS rv_stage{clause}"
        )
        return str(target.statements[key])

    def close(self) -> None:
        Path(self.path).unlink(missing_ok=True)
