"""PostgreSQL's columnar path: Arrow → CSV (pyarrow's writer, in C) → `COPY … FROM STDIN`.

Into a fresh table the CSV goes straight in; into one that holds rows it goes into the
stage table the row path already uses (`PostgreSQLDialect.prepare_table`), and the same
merge (`INSERT … SELECT … ON CONFLICT`, unchanged rows left alone) counts what it did. CSV
keeps NULL (an empty unquoted field) apart from the empty string (always quoted), writes
doubles with every bit, bytea as `\\x` hex text (made by `load.columns`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pyarrow.csv as pacsv

from .arrow_base import ArrowWriter
from .base import Mode, Outcome

if TYPE_CHECKING:
    import pyarrow as pa

    from .postgresql import PostgreSQLDialect

_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed")
COPY_STEP = 1 << 20


class PostgreSQLArrowWriter(ArrowWriter):
    dialect: PostgreSQLDialect

    def takes(self, *, fresh: bool, mode: Mode) -> bool:
        return bool(self.target.key) or fresh or mode in ("insert", "replace")

    def write(self, conn: Any, table: pa.Table, *, fresh: bool, mode: Mode) -> Outcome:
        dialect, target = self.dialect, self.target
        n = table.num_rows
        if fresh or mode in ("insert", "replace"):
            self._copy(conn, dialect.qualified(target.table), table)
            return Outcome(created=n)
        stage = dialect.stage_name(target)
        dialect.execute(conn, f"TRUNCATE {stage}")
        self._copy(conn, stage, table)
        if mode == "skip":
            created = dialect.execute(conn, dialect._merge(target, update=False)).rowcount
            return Outcome(created=created, unchanged=n - created)
        created, touched = dialect.execute(conn, dialect._merge(target, update=True)).fetchone()
        return Outcome(created=created, updated=touched - created, unchanged=n - touched)

    def _copy(self, conn: Any, into: str, table: pa.Table) -> None:
        out = io.BytesIO()
        pacsv.write_csv(table, out, _CSV)
        data = out.getbuffer()
        cols = ", ".join(self.dialect.quote(c) for c in self.target.columns)
        sql = self.dialect.plain(f"COPY {into} ({cols}) FROM STDIN (FORMAT csv)")
        with conn.cursor() as cur, cur.copy(sql) as copy:
            for start in range(0, len(data), COPY_STEP):
                copy.write(data[start : start + COPY_STEP])
        del data
