"""Rows of a table picked by the keys of a backup file, set-based, for the safety snapshot.

A table's keys go into a temporary table made from the table itself (`CREATE TEMPORARY TABLE
... AS SELECT key FROM table WHERE 1 = 0`: the same types and collation, so the database
compares them exactly as the restore's upsert will), through the engine's bulk path (COPY,
LOAD DATA, executemany) a batch at a time. Then one statement per table answers each
question: which rows hold a staged key (those the restore may overwrite), which staged keys
no row holds (those it will insert), and deletes the rows that hold one. Never a query per
row. Everything runs on one raw connection of the engine's bulk path (`Dialect`): temporary
tables live on their connection, and vanish with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from .. import __version__
from ..backuprows import RowEncoder
from ..codec import Decoder
from ..dialects import Dialect, Row, Target, sqlite_dump
from ..file.format import FORMAT, FORMAT_VERSION
from ..file.reader import BackupFile, Layout
from ..file.writer import BackupWriter
from ..progress import utc_now
from ..schema import TableSpec

KEY_BATCH = 20_000
"""Records read per batch of keys (one parse, one bulk write into the temporary table)."""
FETCH_ROWS = 5_000


@dataclass(frozen=True)
class Keyed:
    """A target table, the key that identifies its rows, and how a file spells that key."""

    table: sa.Table
    """Reflected (typed columns)."""
    spec: TableSpec
    key: tuple[str, ...]
    source: str
    """The file's section for the table."""
    fields: tuple[str, ...]
    """The file's field for each key column."""
    decoders: tuple[Decoder, ...]

    @property
    def name(self) -> str:
        return str(self.table.name)

    def key_spec(self, count: int | None = None) -> TableSpec:
        """The table reduced to its key columns: how a file of keys describes it."""
        columns = tuple(c for c in self.spec.columns if c.name in self.key)
        return TableSpec(self.name, columns, primary_key=self.key, count=count)


class KeyStage:
    """The temporary key tables on one raw connection, one per keyed table."""

    def __init__(self, dialect: Dialect, conn: Any, prefix: str = "rowvault_keys") -> None:
        self.dialect = dialect
        self.conn = conn
        self.prefix = prefix
        self._temps: dict[str, Target] = {}

    def create(self, keyed: Keyed) -> None:
        q = self.dialect.quote
        name = f"{self.prefix}_{len(self._temps)}"
        temp = sa.Table(name, sa.MetaData(), *(sa.Column(k, keyed.table.c[k].type) for k in keyed.key))
        types = [keyed.spec.column(k).type for k in keyed.key]  # type: ignore[union-attr]
        self._temps[keyed.name] = Target(temp, list(keyed.key), types, [])
        cols = ", ".join(q(k) for k in keyed.key)
        self.dialect.execute(
            self.conn,
            f"CREATE TEMPORARY TABLE {q(name)} AS SELECT {cols} "
            f"FROM {self.dialect.qualified(keyed.table)} WHERE 1 = 0",
        )

    def load(
        self, file: BackupFile, layout: Layout, tables: Sequence[Keyed], on_read: Callable[[str, int], None]
    ) -> None:
        """Stage the keys of `tables`' records in the file (section `source` each), in one
        transaction. A record whose key cannot be read is left out: the restore rejects it."""
        wanted = {k.source: k for k in tables}
        self.dialect.begin(self.conn)
        with file.sections(layout) as sections:
            for section in sections:
                keyed = wanted.get(section.name)
                if keyed is None:
                    continue
                while chunk := list(islice(section.items, KEY_BATCH)):
                    self.add(keyed, _picked(chunk, section.parse, keyed))
                    on_read(keyed.name, len(chunk))
        self.dialect.commit(self.conn)

    def add(self, keyed: Keyed, rows: list[Row]) -> None:
        if rows:
            self.dialect.write(self.conn, self._temps[keyed.name], rows, fresh=True, mode="insert")

    def holding(self, keyed: Keyed, table: Any = None) -> Any:
        """The condition on `table` (default: the keyed table) that its key is staged."""
        table = keyed.table if table is None else table
        temp = self._temps[keyed.name].table
        picked = sa.select(*(temp.c[k] for k in keyed.key))
        if len(keyed.key) == 1:
            return table.c[keyed.key[0]].in_(picked)
        return sa.tuple_(*(table.c[k] for k in keyed.key)).in_(picked)

    def lacking(self, keyed: Keyed) -> Any:
        """The condition on the keyed table that its key is not staged."""
        temp = self._temps[keyed.name].table
        return ~sa.exists().where(*(keyed.table.c[k] == temp.c[k] for k in keyed.key))

    def missing(self, keyed: Keyed) -> sa.Select[Any]:
        """The staged keys that no row of the table holds, each once."""
        temp = self._temps[keyed.name].table
        found = sa.exists().where(*(keyed.table.c[k] == temp.c[k] for k in keyed.key))
        return sa.select(*(temp.c[k] for k in keyed.key)).where(~found).distinct()


def _picked(chunk: list[Any], parse: Callable[[Any], Any] | None, keyed: Keyed) -> list[Row]:
    """The decoded keys of a batch of records; records without a readable key left out."""
    records = _parsed(chunk, parse)
    columns: list[Sequence[Any]] = []
    bad: set[int] = set()
    for field, decoder in zip(keyed.fields, keyed.decoders, strict=True):
        values = [r.get(field) if isinstance(r, dict) else None for r in records]
        decoded, errors = decoder.decode_column(values)
        bad.update(errors)
        columns.append(decoded)
    rows = zip(*columns, strict=True)
    return [row for i, row in enumerate(rows) if None not in row and i not in bad]


def _parsed(chunk: list[Any], parse: Callable[[Any], Any] | None) -> list[Any]:
    if parse is None:
        return chunk
    try:  # one orjson call for the batch, as the restore parses it
        records = orjson.loads(b"[" + b",".join(chunk) + b"]")
        if len(records) == len(chunk):
            return list(records)
    except orjson.JSONDecodeError:
        pass
    out: list[Any] = []
    for item in chunk:
        try:
            out.append(parse(item))
        except orjson.JSONDecodeError:
            out.append(None)
    return out


def compiled(engine: sa.Engine, stmt: Any) -> str:
    return str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


@dataclass(frozen=True)
class Part:
    """One table of a snapshot file: its description and the query of its rows."""

    spec: TableSpec
    select: Any


def write_file(
    dialect: Dialect,
    conn: Any,
    dest: Path,
    parts: Sequence[Part],
    on_written: Callable[[str, int], None] = lambda table, n: None,
) -> dict[str, int]:
    """Write the rows of `parts` as a rowvault backup (in the caller's transaction: counts and
    rows from one snapshot), encoded by `backup`'s own code, so they restore as a backup does;
    returns rows per table."""
    engine = dialect.engine
    counts = {}
    for part in parts:
        rows = part.select.subquery("rows")
        sql = compiled(engine, sa.select(sa.func.count()).select_from(rows))
        counts[part.spec.name] = int(dialect.execute(conn, sql).fetchone()[0])
    writer = BackupWriter(dest, level=1)  # a file of its own job: speed before size
    try:
        writer.write_metadata(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "createdAt": utc_now().isoformat(),
                "generator": f"rowvault {__version__} (safety snapshot)",
                "dialect": dialect.name,
                "tables": {p.spec.name: p.spec.with_count(counts[p.spec.name]).to_dict() for p in parts},
            }
        )
        for part in parts:
            writer.begin_table(part.spec.name)
            for encoded in _lines(dialect, conn, part.spec, compiled(engine, part.select)):
                writer.write_records(encoded)
                on_written(part.spec.name, len(encoded))
            writer.end_table()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return counts


def _lines(dialect: Dialect, conn: Any, spec: TableSpec, sql: str) -> Iterator[list[bytes]]:
    """The rows of `sql` as `backup` writes them: built by SQLite itself, or encoded from the
    driver's values (`backuprows`)."""
    if dialect.name == "sqlite":
        return sqlite_dump.lines(conn, spec, sql, dialect.quote)
    return RowEncoder(spec, dialect.name).batches(dialect.stream(conn, sql, FETCH_ROWS))
