"""The columnar path: a table's records from file blocks to committed rows without ever
becoming Python objects one by one.

Per batch (about `BATCH_BYTES` of record lines): the lines are cut from the file's blocks at
line ends, made one Arrow string array (C), read and converted by DuckDB with the table's
columnar codec (`load.columns`, on a thread of its own while the previous batch is being
written), and written by the engine's bulk path (`dialects.arrow_*`) in one transaction.

A batch the columnar path cannot take exactly - a line not in rowvault's own spelling, a
value in a form the row codec would convert, a parent that failed, or a database that
refuses the batch - goes whole to the row path (`rowvault.load.rows.TableLoader`), which
writes it with bisection and names every refused record; so record errors, skipped
children and the rejects file are the row path's, unchanged. Batches are settled in order
through the row path's `settle`, so counts, progress and checkpoints are the same too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, overload

import orjson

from ..dberrors import raised_by_driver
from ..dialects import Outcome
from ..dialects.arrow_base import ArrowWriter, BatchRefused
from ..errors import RestoreAborted
from ..file.format import Section
from ..results import TableResult
from .columns import ColumnarCodec, build
from .lanes import Lanes, Written
from .plan import TablePlan
from .rows import LoadContext, TableLoader, _Batch

log = logging.getLogger("rowvault.restore")
BATCH_BYTES = 4 << 20
"""Record text per columnar batch: large enough that DuckDB and the bulk path run at full
speed, small enough that progress moves several times a second."""
DUCKDB_MEMORY = "256MB"
READ_AHEAD = 1
"""Batches being read by DuckDB while the one before them is written. Two (on two threads,
one DuckDB morsel each) measured 3-5% faster into SQLite on the 1M demo, within this
machine's noise, and no faster into PostgreSQL or MariaDB, whose servers the client waits
for; it cost 55 MB of peak RSS (310 -> 369 MB, the limit being 400)."""


class Lines(Sequence[bytes]):
    """A batch's record lines as the file's pieces of text (`,\\n`-separated), joined only
    when read (on the reader's thread) and split only if someone asks for one line (the
    row path, an id)."""

    def __init__(self, pieces: list[bytes], total: int) -> None:
        self.pieces = pieces
        self.total = total
        self._text: bytes | None = None
        self._split: list[bytes] | None = None

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if self._split is None and isinstance(i, int) and i in (-1, self.total - 1):
            return self.last()
        return self.split()[i]

    @property
    def text(self) -> bytes:
        """The lines, each but the last ending in `,\\n`, the last in nothing."""
        if self._text is None:
            text = b"".join(self.pieces)
            self._text = text[:-2] if text.endswith(b",\n") else text[:-1]
            self.pieces = []
        return self._text

    def last(self) -> bytes:
        text = self.text
        return text[text.rfind(b"\n") + 1 :]

    def split(self) -> list[bytes]:
        """Every line, cut at each newline (a line without its comma is one too)."""
        if self._split is None:
            self._split = self.text.replace(b",\n", b"\n").split(b"\n")
        return self._split


def batches(
    regions: Iterator[bytes],
    *,
    skip: int = 0,
    max_bytes: int = BATCH_BYTES,
    max_records: int | None = None,
    lines_of: Callable[[], int] | None = None,
) -> Iterator[Lines]:
    """Record lines of the line layout's regions (`,\\n`-separated, each ending in `\\n`), cut
    into batches of whole lines, after the first `skip` records. `lines_of()`: the lines of
    the region just read, where its reader counted them already."""
    pending: list[bytes] = []
    size = count = 0
    for region in regions:
        lines = lines_of() if lines_of is not None else region.count(b"\n")
        start = 0
        if skip:
            if lines <= skip:
                skip -= lines
                continue
            start = _after_lines(region, start, skip)
            lines -= skip
            skip = 0
        while max_records is not None and count + lines >= max_records:
            cut = _after_lines(region, start, max_records - count)
            pending.append(region[start:cut])
            yield Lines(pending, max_records)
            pending, size = [], 0
            lines -= max_records - count
            count, start = 0, cut
        if start == len(region):
            continue
        piece = region[start:] if start else region
        pending.append(piece)
        size += len(piece)
        count += lines
        if size >= max_bytes:
            yield Lines(pending, count)
            pending, size, count = [], 0, 0
    if pending:
        yield Lines(pending, count)


def _after_lines(data: bytes, start: int, n: int) -> int:
    """The position just past the `n`-th newline of `data` from `start` on."""
    at = start - 1
    for _ in range(n):
        at = data.index(b"\n", at + 1)
    return at + 1


class DuckReader:
    """Record lines → converted Arrow columns, with the codec's checks: one DuckDB database
    per restore, read by `READ_AHEAD` threads at once, each with a cursor of its own (a batch
    is a single DuckDB morsel, so one query keeps one core busy)."""

    def __init__(self) -> None:
        self._con: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._cursors: list[Any] = []
        self._lock = threading.Lock()

    def submit(self, codec: ColumnarCodec, lines: Lines) -> Future[Any]:
        """`read` on one of the reader's threads."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="rowvault-columns")
        return self._pool.submit(self.read, codec, lines)

    def _cursor(self) -> Any:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                if self._con is None:
                    import duckdb

                    self._con = duckdb.connect(config={"threads": 2, "memory_limit": DUCKDB_MEMORY})
                cursor = self._con.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor

    def read(self, codec: ColumnarCodec, lines: Lines) -> Any:
        """The batch as an Arrow table of the target's columns, or None when any line or
        value must take the row path."""
        import duckdb
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            text = pa.array([lines.text], pa.binary()).cast(pa.string())
            column = pc.split_pattern(text, ",\n").flatten()
            if len(column) != lines.total:
                return None
            con = self._cursor()
            con.register("lines", pa.table({"line": column}))
            try:
                table = con.sql(codec.query).to_arrow_table()
            finally:
                con.unregister("lines")
        except (duckdb.Error, pa.ArrowInvalid) as exc:
            log.debug("[restore] columnar batch declined: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return None
        if table.num_rows != lines.total or not pc.all(table.column("rowvault_ok")).as_py():
            return None
        if not all(canonical_json(table.column(f"c{i}")) for i in codec.json_outputs):
            return None
        table = table.drop_columns(["rowvault_ok"])
        return table.rename_columns(list(codec.names))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for cursor in self._cursors:
            with suppress(Exception):
                cursor.close()
        self._cursors.clear()
        if self._con is not None:
            with suppress(Exception):
                self._con.close()
            self._con = None


def canonical_json(column: Any) -> bool:
    """Whether each JSON text of the column is exactly orjson's writing of what it reads -
    what the row path stores. (It is not for a key named twice in a document, a number
    spelled another way, an integer past 64 bits: those batches take the row path.)"""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = pc.drop_null(column.combine_chunks() if hasattr(column, "combine_chunks") else column)
    if len(present) == 0:
        return True
    documents = pa.ListArray.from_arrays(pa.array([0, len(present)], pa.int32()), present)
    joined = pc.binary_join(documents, ",")[0].as_py()
    data = ("[" + joined + "]").encode()
    try:
        return bool(orjson.dumps(orjson.loads(data)) == data)
    except (orjson.JSONDecodeError, TypeError):
        return False


def arrow_writer(ctx: LoadContext, plan: TablePlan) -> ArrowWriter | None:
    """The engine's columnar writer for the table, if the engine has one that applies."""
    name = ctx.dialect.name
    if name == "sqlite":
        from ..dialects.arrow_sqlite import SQLiteArrowWriter, database_file

        if database_file(ctx.dialect) is None:
            return None
        return SQLiteArrowWriter(ctx.dialect, plan.target, ctx.session)
    if name == "postgresql":
        from ..dialects.arrow_postgresql import PostgreSQLArrowWriter

        return PostgreSQLArrowWriter(ctx.dialect, plan.target, ctx.session)
    if name == "mysql":
        from ..dialects.arrow_mysql import MySQLArrowWriter

        return MySQLArrowWriter(ctx.dialect, plan.target, ctx.session)
    return None


def columnar_loader(
    plan: TablePlan,
    ctx: LoadContext,
    result: TableResult,
    section: Section,
    reader: DuckReader,
    lanes: Lanes | None = None,
) -> ColumnarLoader | None:
    """A loader that moves the table as columns, or None when only the row path can take it:
    not rowvault's line layout, a dry run, cycles' held-back keys, a kind no engine bulk
    path takes exactly, a table without a key that already holds rows. `lanes` write its
    batches on several connections where the batches go straight into the table (not
    through a stage and a merge) and no pause between batches was asked for."""
    if section.regions is None or ctx.simulate or ctx.tx.dry_run or plan.deferrals:
        return None
    codec = build(plan, ctx.dialect.name)
    if codec is None:
        return None
    writer = arrow_writer(ctx, plan)
    if writer is None or not writer.takes(fresh=plan.fresh, mode=ctx.mode):
        if writer is not None:
            writer.close()
        return None
    straight = plan.fresh or ctx.mode in ("insert", "replace")
    if not straight or ctx.delay_seconds or writer.own_connection:
        lanes = None
    return ColumnarLoader(plan, ctx, result, codec=codec, writer=writer, reader=reader, lanes=lanes)


@dataclass
class _InFlight:
    """A batch given to a lane, kept until it is settled (written again if it was held)."""

    lines: Lines
    base: int
    table: Any
    written: Future[Written]


class ColumnarLoader(TableLoader):
    def __init__(
        self,
        plan: TablePlan,
        ctx: LoadContext,
        result: TableResult,
        *,
        codec: ColumnarCodec,
        writer: ArrowWriter,
        reader: DuckReader,
        lanes: Lanes | None = None,
    ) -> None:
        super().__init__(plan, ctx, result)
        self.codec = codec
        self.writer = writer
        self.reader = reader
        self.lanes = lanes
        self.in_flight: deque[_InFlight] = deque()
        self.columnar_batches = 0
        self.row_batches = 0

    def run(self, section: Section, skip: int = 0) -> None:
        assert section.regions is not None
        regions = section.regions
        self.in_table(lambda: self._columns(section, regions, skip))
        log.info(
            "[restore] %s: %d batches as columns, %d through the row path",
            self.plan.source,
            self.columnar_batches,
            self.row_batches,
        )

    def _columns(self, section: Section, regions: Iterator[bytes], skip: int) -> None:
        ctx = self.ctx
        fixed = ctx.sizer.fixed
        self.writer.start(ctx)
        if self.lanes is not None:
            self.lanes.restart()
        pending: deque[tuple[Lines, int, Future[Any]]] = deque()
        base = skip
        try:
            for lines in batches(regions, skip=skip, max_records=fixed, lines_of=section.region_lines):
                if ctx.should_stop():
                    raise RestoreAborted("cancelled", cancelled=True)
                pending.append((lines, base, self.reader.submit(self.codec, lines)))
                base += len(lines)
                if len(pending) > READ_AHEAD:  # written while the next ones are read
                    self._write(section, *pending.popleft())
            while pending:
                self._write(section, *pending.popleft())
            self._drain(section)
        finally:
            for _, _, read in pending:
                with suppress(BaseException):
                    read.result()
            self._leave_lanes()
            self.writer.close()  # before the table's clean-up, which needs the connection back

    def _write(self, section: Section, lines: Lines, base: int, read: Future[Any]) -> None:
        table = read.result()
        if table is None or self._parents_failed():
            self._drain(section)
            self._row_path(section, lines, base)
            return
        if self.lanes is not None:
            self._to_lane(section, lines, base, table)
            return
        self._serially(section, lines, base, table)

    def _serially(self, section: Section, lines: Lines, base: int, table: Any) -> None:
        outcome = self._attempt(table)
        del table
        if outcome is None:
            self._row_path(section, lines, base)
            return
        self._settle_columns(lines, base, outcome)
        if self.ctx.delay_seconds:
            time.sleep(self.ctx.delay_seconds)

    def _attempt(self, table: Any) -> Outcome | None:
        """Write the batch in one transaction; None when the database refused it (the row
        path then finds out why, and says so). A transient failure - a lost connection, a
        deadlock - is waited out on a new connection and the batch written again."""
        ctx, own = self.ctx, self.writer.own_connection
        while True:
            try:
                if not own:
                    ctx.tx.begin()
                outcome = self.writer.write(ctx.conn, table, fresh=self.plan.fresh, mode=ctx.mode)
                if not own:
                    ctx.tx.commit()
            except Exception as exc:
                if not (raised_by_driver(exc) or _columnar_refusal(exc)):
                    raise
                log.debug("[restore] %s: columnar batch refused (%s)", self.plan.source, exc)
                if own:
                    return None
                with suppress(Exception):  # a lost connection cannot roll back
                    ctx.tx.rollback()
                if ctx.recover(exc):
                    continue
                return None
            ctx.succeeded()
            return outcome

    # -- on lanes ----------------------------------------------------------------------------

    def _to_lane(self, section: Section, lines: Lines, base: int, table: Any) -> None:
        """Give the batch to the next lane, keeping as many batches in flight as there are
        lanes: the oldest is settled first."""
        assert self.lanes is not None
        writer, fresh, mode = self.writer, self.plan.fresh, self.ctx.mode
        written = self.lanes.submit(lambda conn: writer.write(conn, table, fresh=fresh, mode=mode))
        self.in_flight.append(_InFlight(lines, base, table, written))
        while self.lanes is not None and len(self.in_flight) >= len(self.lanes):
            self._settle_oldest(section)

    def _drain(self, section: Section) -> None:
        """Settle every batch in flight (before the row path uses the restore's connection)."""
        while self.in_flight:
            self._settle_oldest(section)

    def _settle_oldest(self, section: Section) -> None:
        batch = self.in_flight.popleft()
        written = batch.written.result()
        if written.outcome is not None:
            self.ctx.succeeded()
            self._settle_columns(batch.lines, batch.base, written.outcome)
            return
        # Refused (the oldest is never held: the batch before it is settled). Every later
        # batch waits for this one, so none of them commits: they come back held.
        later = list(self.in_flight)
        self.in_flight.clear()
        for held in later:
            with suppress(BaseException):
                held.written.result()
        log.debug("[restore] %s: columnar batch refused on a lane (%s)", self.plan.source, written.refused)
        lanes = self.lanes
        if written.lost:
            log.info(
                "[restore] %s: no second connection (%s): one from here on", self.plan.source, written.refused
            )
            self.lanes = None
        if lanes is not None:
            lanes.restart()
        self._row_path(section, batch.lines, batch.base)
        for held in later:
            if self.lanes is None:
                self._serially(section, held.lines, held.base, held.table)
            else:
                self._to_lane(section, held.lines, held.base, held.table)

    def _leave_lanes(self) -> None:
        """The table stops part-way: batches waiting for their turn roll back; those that
        committed already are settled, so the checkpoint names every committed record."""
        if self.lanes is None or not self.in_flight:
            return
        self.lanes.stopping.set()
        try:
            for batch in self.in_flight:
                try:
                    written = batch.written.result()
                except BaseException:
                    break
                if written.outcome is None:
                    break
                with suppress(Exception):
                    self._settle_columns(batch.lines, batch.base, written.outcome)
        finally:
            for batch in self.in_flight:
                with suppress(BaseException):
                    batch.written.result()
            self.in_flight.clear()
            self.lanes.restart()

    def _settle_columns(self, lines: Lines, base: int, outcome: Outcome) -> None:
        """Count, report and checkpoint a batch written as columns."""
        self.columnar_batches += 1
        self.settle(_settled(lines, base, outcome, self._last_record(lines)))

    # -- the row path --------------------------------------------------------------------------

    def _row_path(self, section: Section, lines: Lines, base: int) -> None:
        self.row_batches += 1
        with self.writer.row_path():
            batch = self.prepare(lines.split(), base, section)
            self.write(batch)
        self.settle(batch)

    def _parents_failed(self) -> bool:
        failures = self.ctx.failures
        return any(failures.get(check.parent, check.columns) for check in self.plan.parent_checks)

    def _last_record(self, lines: Lines) -> Any:
        last = lines.last()
        try:
            return orjson.loads(last)
        except orjson.JSONDecodeError:
            return None


def _settled(lines: Lines, base: int, outcome: Any, last: Any) -> _Batch:
    records: list[Any] = [None] * len(lines)
    if records:
        records[-1] = last
    return _Batch(lines, base, records, [], [], [], {}, [], outcome)  # type: ignore[arg-type]


def _columnar_refusal(exc: BaseException) -> bool:
    """A bulk path's own refusals (ADBC's errors, a LOAD DATA with warnings)."""
    if isinstance(exc, BatchRefused):
        return True
    module = type(exc).__module__ or ""
    return module.startswith("adbc_driver")
