"""MySQL/MariaDB's columnar path: Arrow → tab-separated text (pyarrow's CSV writer, in C) →
`LOAD DATA LOCAL INFILE`, for plain inserts (a fresh table, `insert`, `replace`).

Every value is quoted and nothing is escaped (`ESCAPED BY ''`): a quote inside a value is
doubled, tabs and newlines stay inside their quotes, and NULL is the bare word NULL, which
the server reads as SQL NULL only unquoted. Binary columns come as hex text (made by
`load.columns`) and go through UNHEX(). The server turns what would be errors into warnings
for LOAD DATA, so a batch counts only if it took every row without one; else it is rolled
back and raised, and the row path writes the batch and names the bad record.

Populated tables are upserted by the row path (its ON DUPLICATE KEY UPDATE keeps MariaDB's
JSON and single-precision floats unchanged where equal, row by row).
"""

from __future__ import annotations

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

    def takes(self, *, fresh: bool, mode: Mode) -> bool:
        load = self.dialect._load  # None: not a connection rowvault made, or LOCAL refused
        return (fresh or mode in ("insert", "replace")) and load is not None and load.available

    def write(self, conn: Any, table: pa.Table, *, fresh: bool, mode: Mode) -> Outcome:
        if "bytes" in self.target.kinds:
            counter = self.dialect.counter_position(conn, self.target)
            if counter is not None and pc.any(pc.equal(table.column(counter), 0)).as_py():
                raise BatchRefused(RENUMBERS_ZERO)
        pacsv.write_csv(table, self.path, _TSV)
        try:
            with conn.sending(self.path):
                cur = self.dialect.execute(conn, self._statement(conn))
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] in _LOCAL_REFUSED and self.dialect._load is not None:
                self.dialect._load.available = False
            raise
        if cur.rowcount != table.num_rows or cur.warning_count:
            raise BatchRefused(f"{cur.rowcount} of {table.num_rows} rows, {cur.warning_count} warnings")
        return Outcome(created=table.num_rows)

    def _statement(self, conn: Any) -> str:
        target = self.target
        if "columns-load" not in target.statements:
            target.statements["columns-load"] = load_statement(
                self.dialect.quote, conn.escape(self.path), target, "''"
            )
        return str(target.statements["columns-load"])

    def close(self) -> None:
        Path(self.path).unlink(missing_ok=True)
