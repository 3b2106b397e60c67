"""`backup(db, dest)`: every table, parents first, read inside one snapshot, streamed out.

On SQLite each record's line is built by SQLite itself (`dialects/sqlite_dump`), with every
value it cannot prove it writes identically handed to the row path's encoder; elsewhere rows
come from the driver through a server-side cursor and are encoded with orjson
(`backuprows`). One record per line, gzip on its own thread (`file/writer`); the file is
written under a temporary name and moved into place only when complete. Counts are taken
inside the same snapshot, so the metadata's per-table counts are exactly the records that
follow.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

import sqlalchemy as sa

from . import __version__
from .backuprows import RowEncoder
from .database import DatabaseLike, opened
from .dialects import Dialect, dialect_for, sqlite_dump
from .errors import BackupAborted, DiskFull, OptionError
from .file.format import FORMAT, FORMAT_VERSION
from .file.writer import BackupWriter
from .load.matching import match_names
from .load.ordering import Edge, plan_order
from .load.pending import PENDING_TABLE
from .options import BackupOptions
from .progress import Progress, ProgressCallback, null_progress, utc_now
from .results import BackupResult
from .retry import GaveUp, Retries, transient
from .schema import Schema, TableSpec, reflect

log = logging.getLogger("rowvault.backup")
FETCH_ROWS = 5000
NEWEST_COLUMNS = ("created_at", "createdat", "created", "updated_at", "updatedat", "timestamp")


def backup(
    db: DatabaseLike,
    dest: str | Any | IO[bytes],
    *,
    options: BackupOptions | None = None,
    progress: ProgressCallback = null_progress,
    _row_path: bool = False,
    **option_kwargs: Any,
) -> BackupResult:
    """Write a backup of `db` to `dest` (a path, `.gz` for gzip, or a binary stream).

    `_row_path` (internal: tests and benchmarks) writes every value through the Python
    encoder and today's writer, the oracle the fast path is compared with."""
    options = options or BackupOptions(**option_kwargs)
    started = time.perf_counter()
    with opened(db, must_exist=True) as database:
        dialect = dialect_for(database.engine)
        with database.engine.connect() as sa_conn:
            schema = reflect(sa_conn, dialect.json_columns(sa_conn.connection.driver_connection))
        names = _chosen_tables(schema, options)
        queries = _Queries(schema, database.engine.dialect, options)
        retries = Retries(options.retries, first_wait=options.retry_wait_seconds)
        while True:
            try:
                result = _snapshot(dialect, schema, names, queries, dest, options, progress, _row_path)
                break
            except Exception as exc:
                reason = transient(exc) if isinstance(dest, (str, os.PathLike)) else None
                if reason is None:
                    raise
                log.warning("[backup] %s; starting again on a new connection", reason)
                try:  # a new snapshot, from the first table: the file was not kept
                    retries.failed(reason)
                except GaveUp as gave_up:
                    raise BackupAborted(str(gave_up)) from exc
    result.seconds = time.perf_counter() - started
    log.info("[backup] %d records from %d tables in %.1fs", result.total, len(names), result.seconds)
    return result


def _snapshot(
    dialect: Dialect,
    schema: Schema,
    names: list[str],
    queries: _Queries,
    dest: Any,
    options: BackupOptions,
    progress: ProgressCallback,
    row_path: bool,
) -> BackupResult:
    """One attempt: every table read in one snapshot, the file written whole or not at all."""
    conn = dialect.connect()
    try:
        dialect.begin_snapshot(conn)
        counts = {t: _count(dialect, conn, queries.count(t)) for t in names}
        result = _write(dialect, conn, schema, names, counts, queries, dest, options, progress, row_path)
        dialect.rollback(conn)
        return result
    finally:
        dialect.release(conn)


def check_options(db: DatabaseLike, options: BackupOptions) -> None:
    """Raise OptionError now for table names the database does not have."""
    with opened(db, must_exist=True) as database:
        _check_names([str(n) for n in sa.inspect(database.engine).get_table_names()], options)


def _check_names(available: list[str], options: BackupOptions) -> None:
    asked = list(options.tables) if options.tables is not None else available
    for label, names in (
        ("tables", asked),
        ("exclude", options.exclude),
        ("limit", options.limits),
    ):
        missing = [n for n in names if n not in available]
        if missing:
            found = match_names(missing, available).mapping
            hint = "; ".join(f"did you mean {found[m]!r}?" for m in missing if m in found)
            raise OptionError(
                f"{label}: no table named {', '.join(map(repr, missing))} in the database"
                + (f" ({hint})" if hint else "")
            )


def _chosen_tables(schema: Schema, options: BackupOptions) -> list[str]:
    available = [name for name in schema.specs if name != PENDING_TABLE]  # rowvault's own
    _check_names(available, options)
    asked = list(options.tables) if options.tables is not None else available
    chosen = [str(t) for t in asked if t not in set(options.exclude)]
    edges = [
        Edge(spec.name, fk.ref_table, i, True)
        for spec in schema.specs.values()
        for i, fk in enumerate(spec.foreign_keys)
    ]
    return plan_order(sorted(chosen), edges).tables


def _count(dialect: Dialect, conn: Any, sql: str) -> int:
    return int(dialect.execute(conn, sql).fetchone()[0])


class _Queries:
    """The SELECT of each table: demo rows and rows that reference them left out, limited
    tables cut to their newest rows (and rows that reference the cut ones left out too)."""

    def __init__(self, schema: Schema, dialect: sa.Dialect, options: BackupOptions) -> None:
        self.schema = schema
        self.dialect = dialect
        self.options = options
        self._filtered: dict[str, bool] = {}

    def _compile(self, stmt: Any) -> str:
        return str(stmt.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))

    def select(self, name: str) -> str:
        return self._compile(self.statement(name))

    def count(self, name: str) -> str:
        rows = self.statement(name).subquery("rows")
        return self._compile(sa.select(sa.func.count()).select_from(rows))

    def statement(self, name: str) -> Any:
        table = self.schema.tables[name]
        stmt = sa.select(*table.columns)
        where = self._keep(name, table, frozenset())
        if where is not None:
            stmt = stmt.where(where)
        if name in self.options.limits and not self.schema.specs[name].key:
            stmt = stmt.order_by(*self._newest(name, table)).limit(self.options.limits[name])
        return stmt

    def _demo_column(self, name: str) -> str | None:
        if self.options.include_demo_data:
            return None
        spec = self.schema.specs[name]
        col = spec.column(self.options.demo_column)
        return col.name if col is not None else None

    def filtered(self, name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in self._filtered:
            return self._filtered[name]
        spec = self.schema.specs[name]
        answer = self._demo_column(name) is not None or name in self.options.limits
        if not answer and name not in seen:
            answer = any(
                self.filtered(fk.ref_table, seen | {name})
                for fk in spec.foreign_keys
                if fk.ref_table in self.schema.specs and fk.ref_table != name
            )
        self._filtered[name] = answer
        return answer

    def _keep(self, name: str, table: Any, seen: frozenset[str]) -> Any:
        """The condition a row of `table` (an alias of `name`) meets to be backed up."""
        conditions = self._own(name, table, seen)
        if name in self.options.limits and self.schema.specs[name].key:
            key = self.schema.specs[name].key
            inner = self.schema.tables[name].alias(f"lim_{len(seen)}")
            own = self._own(name, inner, seen)
            sub = sa.select(*(inner.c[k] for k in key))
            if own:
                sub = sub.where(*own)
            sub = sub.order_by(*self._newest(name, inner)).limit(self.options.limits[name])
            wrapped = sa.select(*sub.subquery(f"newest_{len(seen)}").c)
            lhs = sa.tuple_(*(table.c[k] for k in key)) if len(key) > 1 else table.c[key[0]]
            conditions.append(lhs.in_(wrapped))
        return sa.and_(*conditions) if conditions else None

    def _own(self, name: str, table: Any, seen: frozenset[str]) -> list[Any]:
        conditions = []
        demo = self._demo_column(name)
        if demo is not None:
            flag = table.c[demo]
            conditions.append(sa.or_(flag.is_(None), flag == sa.false()))
        for fk in self.schema.specs[name].foreign_keys:
            parent = fk.ref_table
            if parent not in self.schema.specs or parent in seen or parent == name:
                continue
            if not self.filtered(parent):
                continue
            alias = self.schema.tables[parent].alias(f"p{len(seen)}_{parent}"[:60])
            keep = self._keep(parent, alias, seen | {name})
            if keep is None:
                continue
            joins = [alias.c[r] == table.c[c] for c, r in zip(fk.columns, fk.ref_columns, strict=True)]
            nulls = [table.c[c].is_(None) for c in fk.columns]
            conditions.append(sa.or_(*nulls, sa.exists().where(*joins, keep)))
        return conditions

    def _newest(self, name: str, table: Any) -> list[Any]:
        spec = self.schema.specs[name]
        by_name = {c.name.lower().replace("_", ""): c for c in spec.columns}
        for candidate in NEWEST_COLUMNS:
            col = by_name.get(candidate.replace("_", ""))
            if col is not None and col.type.kind in ("datetime", "date", "integer"):
                return [table.c[col.name].desc(), *(table.c[k].desc() for k in spec.key)]
        if spec.key:
            return [table.c[k].desc() for k in spec.key]
        return [table.c[c].desc() for c in spec.column_names[:1]]


def _write(
    dialect: Dialect,
    conn: Any,
    schema: Schema,
    names: Sequence[str],
    counts: dict[str, int],
    queries: _Queries,
    dest: Any,
    options: BackupOptions,
    progress: ProgressCallback,
    row_path: bool,
) -> BackupResult:
    state = Progress()
    state.start(counts)
    progress(state)
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "createdAt": utc_now().isoformat(),
        "generator": f"rowvault {__version__}",
        "dialect": dialect.name,
        "options": {
            "includeDemoData": options.include_demo_data,
            "limits": dict(options.limits),
        },
        "tables": {t: schema.specs[t].with_count(counts[t]).to_dict() for t in names},
    }
    writer = BackupWriter(dest, compress=options.compress, threaded=not row_path)
    where = os.fspath(dest) if isinstance(dest, (str, os.PathLike)) else getattr(dest, "name", "<stream>")
    result = BackupResult(path=str(where))
    try:
        writer.write_metadata(metadata)
        for name in names:
            state.enter_table(name)
            progress(state)
            writer.begin_table(name)
            written = 0
            for encoded in _batches(dialect, conn, schema.specs[name], queries.select(name), row_path):
                writer.write_records(encoded)
                written += len(encoded)
                state.advance(name, len(encoded))
                progress(state)
            writer.end_table()
            if written != counts[name]:
                raise BackupAborted(
                    f"counted {counts[name]} rows but read {written}; the snapshot did not hold",
                    table=name,
                )
            result.tables[name] = written
            log.info("[backup] %s: %d records", name, written)
        writer.close()
    except BaseException as exc:
        writer.abort()
        state.finish("error")
        progress(state)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # name the file, not the disk
            raise DiskFull(exc.strerror or str(exc), path=result.path) from exc
        raise
    result.bytes_written = writer.bytes_written
    state.finish("completed")
    progress(state)
    return result


def _batches(dialect: Dialect, conn: Any, spec: TableSpec, sql: str, row_path: bool) -> Iterator[list[bytes]]:
    """A table's records as JSON lines: built by the database itself (`dialects.*_dump`), or
    encoded in Python from the driver's values (`backuprows`, the row path)."""
    if dialect.name == "sqlite" and not row_path:
        return sqlite_dump.lines(conn, spec, sql, dialect.quote)
    if dialect.name == "postgresql" and not row_path:
        from .dialects import postgresql_dump  # psycopg: imported only where it is used

        return postgresql_dump.lines(dialect, conn, spec, sql)
    if dialect.name == "mysql" and not row_path:
        from .dialects import mysql_dump

        return mysql_dump.lines(dialect, conn, spec, sql)
    return RowEncoder(spec, dialect.name).batches(dialect.stream(conn, sql, FETCH_ROWS))
