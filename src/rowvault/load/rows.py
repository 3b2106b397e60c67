"""The hot path: one table's records, batch by batch, from file lines to committed rows.

Per batch: parse the lines with orjson, pick each record's values in column order with
`itemgetter`, decode and check them a column at a time, skip children of failed parents,
hold back foreign keys that close a cycle, then write the rest in one transaction through the
dialect's bulk path. A batch the database refuses is bisected until the refused records are
isolated; every other record is still written. Each failure becomes a `table:id - reason`
error (the id as the file spells it) and a line in the rejects file. Only the database's
refusals become record errors: anything else raised while writing is a bug and is raised.

A table without a key restores to the same multiset of rows as the backup (`Copies`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import Any, TypeVar

import orjson

from ..dberrors import raised_by_driver, translate
from ..dialects import Dialect, Outcome, Row, Target
from ..errors import RestoreAborted
from ..file.format import Section
from ..file.recordtext import LONG_DIGITS, as_written, duplicate_keys, exact_integers
from ..file.rejects import Rejects
from ..progress import Progress, ProgressCallback
from ..results import RestoreResult, TableResult
from ..retry import GaveUp, Retries, transient
from .batching import MAX_BATCH, BatchSizer, Transactions
from .plan import TablePlan
from .state import Copies, DeferredWrites, Failures, frozen

log = logging.getLogger("rowvault.restore")
BATCH_LOG_SECONDS = 1.0
"""Batch log lines: at most one a second per table (and the table's last)."""
COPIES_BATCH = 50_000
"""Records per batch of a table without a key that already holds rows (see `Copies`)."""
T = TypeVar("T")


@dataclass
class _Batch:
    """One batch on its way: prepared in one thread, maybe written in another."""

    chunk: list[Any]
    base: int
    records: list[Any]
    cols: list[Sequence[Any]]
    rows: list[Row]
    held: list[Row]
    errors: dict[int, str]
    good: list[int]
    outcome: Outcome | None = None


@dataclass
class LoadContext:
    """What every table's loader shares during one restore."""

    dialect: Dialect
    conn: Any
    tx: Transactions
    mode: str
    result: RestoreResult
    progress: Progress
    report: ProgressCallback
    rejects: Rejects
    sizer: BatchSizer
    simulate: bool = False
    delay_seconds: float = 0.0
    should_stop: Callable[[], bool] = lambda: False
    on_checkpoint: Callable[[str, int], None] = lambda table, done: None
    failures: Failures = field(default_factory=Failures)
    deferred: DeferredWrites = field(default_factory=DeferredWrites)
    pipeline: ThreadPoolExecutor | None = None
    """A writer thread, for engines that work in another process while Python prepares."""
    retries: Retries | None = None
    """Transient failures are waited out on a new connection (`retry`); None: not at all
    (a dry run, whose outer transaction a new connection would lose)."""
    session: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    """Set-up that lives on the connection (a stage table, foreign-key checks off): run
    again on every new connection."""

    def run(self, work: Callable[[Any], T]) -> T:
        """`work(conn)` - outside the batches - again on a new connection after a transient
        failure (`recover`)."""
        while True:
            try:
                return work(self.conn)
            except Exception as exc:
                if not self.recover(exc):
                    raise

    def recover(self, exc: BaseException) -> bool:
        """True when `exc` is a transient failure (`retry.transient`) and, after a wait, a
        new connection with this run's set-up is ready for another attempt; False when it
        is not transient. Raises RestoreAborted once the retries are spent."""
        reason = transient(exc) if self.retries is not None else None
        if reason is None or self.retries is None:
            return False
        while True:
            log.warning("[restore] %s; trying again on a new connection", reason)
            try:
                self.retries.failed(reason)
            except GaveUp as gave_up:
                raise RestoreAborted(
                    f"{_failure(exc, self)} (gave up after {gave_up.attempts} retries)"
                ) from exc
            try:
                self._reconnect()
            except Exception as again:
                if not raised_by_driver(again):
                    raise
                reason = transient(again) or _failure(again, self)  # the server may be restarting
                exc = again
                continue
            return True

    def _reconnect(self) -> None:
        with suppress(Exception):  # the old one is most likely dead already
            self.dialect.release(self.conn)
        self.conn = self.tx.conn = self.dialect.connect()
        for setup in list(self.session.values()):
            setup(self.conn)

    def succeeded(self) -> None:
        if self.retries is not None:
            self.retries.succeeded()


def format_key(values: Sequence[Any]) -> str:
    return ",".join("" if v is None else str(v) for v in values)


class TableLoader:
    def __init__(self, plan: TablePlan, ctx: LoadContext, result: TableResult) -> None:
        self.plan = plan
        self.ctx = ctx
        self.result = result
        self.columns = plan.target.columns
        self.width = len(plan.keys)
        self.single = self.width == 1
        self._get = itemgetter(*plan.keys)
        self._known = frozenset(plan.keys)
        self._empty: Row = (None,) * self.width
        self._key_sources = [plan.keys[p] for p in plan.key_positions]
        self._key_pick = itemgetter(*plan.key_positions) if plan.key_positions else None
        self._held = [p for d in plan.deferrals for p in d.positions]
        self._referenced = [(cols, [plan.position(c) for c in cols]) for cols in plan.referenced]
        self._logged = float("-inf")
        keyless = not plan.target.key and not plan.fresh and ctx.mode in ("upsert", "skip")
        self._copies = Copies() if keyless else None
        self._in_table = 0
        """Rows this run committed to the table (what `_landed` expects to find)."""

    # -- the table ---------------------------------------------------------------------------

    def run(self, section: Section, skip: int = 0) -> None:
        ctx = self.ctx
        items = section.items
        if skip and self._copies is not None:
            self._recount(section, items, skip)
        elif skip and self._held:
            self._hold_again(section, items, skip)
        elif skip:
            for _ in islice(items, skip):
                pass
        index = skip
        if ctx.simulate:
            self._batches(section, items, index)
            return
        self.in_table(lambda: self._batches(section, items, index))

    def in_table(self, work: Callable[[], None]) -> None:
        """`work()` between the dialect's per-table set-up and its clean-up."""
        ctx = self.ctx
        target, fresh, in_transaction = self.plan.target, self.plan.fresh, ctx.tx.dry_run

        def prepare(conn: Any) -> None:
            ctx.dialect.prepare_table(conn, target, fresh=fresh, in_transaction=in_transaction)

        def finish(conn: Any) -> None:
            ctx.dialect.finish_table(conn, target, fresh=fresh, in_transaction=in_transaction)

        ctx.run(prepare)
        ctx.session["table"] = prepare  # a stage table lives on the connection
        try:
            work()
        except BaseException:
            ctx.session.pop("table", None)
            with suppress(Exception):  # what stopped the table is the news
                finish(ctx.conn)
            raise
        ctx.session.pop("table", None)
        ctx.run(finish)

    def _recount(self, section: Section, items: Iterator[Any], skip: int) -> None:
        """Resuming a table without a key: the records the stopped run wrote count as seen."""
        copies, done = self._copies, 0
        assert copies is not None
        while done < skip and (chunk := list(islice(items, min(MAX_BATCH, skip - done)))):
            batch = self.prepare(chunk, done, section)
            copies.tally([batch.rows[i] for i in batch.good])
            done += len(chunk)

    def _hold_again(self, section: Section, items: Iterator[Any], skip: int) -> None:
        """Resuming a table with held-back foreign keys: the rows the stopped run wrote are not
        written again, but their held-back values - which lived in its memory - are read
        from the file once more, to be filled in with the others'."""
        done = 0
        while done < skip and (chunk := list(islice(items, min(MAX_BATCH, skip - done)))):
            batch = self.prepare(chunk, done, section)
            self._defer(batch)
            done += len(chunk)

    def _defer(self, batch: _Batch) -> None:
        ctx, errors = self.ctx, batch.errors
        for i in batch.good:
            if i not in errors and any(v is not None for v in batch.held[i]):
                key = self._key_pick(batch.rows[i]) if self._key_pick else ()
                key = key if isinstance(key, tuple) else (key,)
                ctx.deferred.add(self.plan.source, key, batch.held[i], batch.records[i])

    def _batches(self, section: Section, items: Iterator[Any], index: int) -> None:
        """Prepare a batch, write it, settle it. With a pipeline (engines in another process),
        the next batch is prepared while the previous one is being written."""
        ctx = self.ctx
        pipeline = ctx.pipeline if self._may_pipeline else None
        pending: tuple[_Batch, Future[None]] | None = None
        clock = time.perf_counter()
        try:
            while True:
                if ctx.should_stop():
                    raise RestoreAborted("cancelled", cancelled=True)
                chunk = list(islice(items, self._batch_size()))
                if not chunk:
                    break
                batch = self.prepare(chunk, index, section)
                index += len(chunk)
                if pipeline is None:
                    self.write(batch)
                    clock = self._settle(batch, None, clock)
                    continue
                if pending is not None:
                    clock = self._settle(pending[0], pending[1], clock)
                pending = (batch, pipeline.submit(self.write, batch))
            if pending is not None:
                batch, future = pending
                pending = None
                self._settle(batch, future, clock)
        finally:
            if pending is not None:  # stopping early: the connection is free only once it is done
                with suppress(BaseException):
                    pending[1].result()

    def _batch_size(self) -> int:
        """Counting copies costs about the same per batch whatever its size (a hash join scans
        the table on PostgreSQL): those batches are large, and their time says nothing about
        other tables' records."""
        sizer = self.ctx.sizer
        return COPIES_BATCH if self._copies is not None and sizer.fixed is None else sizer.size()

    @property
    def _may_pipeline(self) -> bool:
        # Children of a failed row must be known before the next batch is prepared.
        return all(check.parent != self.plan.source for check in self.plan.parent_checks)

    def _settle(self, batch: _Batch, future: Future[None] | None, since: float) -> float:
        if future is not None:
            future.result()
        self.settle(batch)
        now = time.perf_counter()
        if not batch.errors and self._copies is None:
            self.ctx.sizer.record(len(batch.chunk), now - since)
        if self.ctx.delay_seconds:
            time.sleep(self.ctx.delay_seconds)
            now = time.perf_counter()
        return now

    # -- one batch -------------------------------------------------------------------------

    def prepare(self, chunk: list[Any], base: int, section: Section) -> _Batch:
        """Parse, pick, decode and check one batch; nothing touches the database."""
        n = len(chunk)
        errors: dict[int, str] = {}
        records = self._parse(chunk, section, base, errors)
        cols: list[Sequence[Any]] = list(zip(*self._rows(records, errors), strict=True))
        for pos, decoder in enumerate(self.plan.decoders):
            values, bad = decoder.decode_column(cols[pos])
            cols[pos] = values
            for i, reason in bad.items():
                errors.setdefault(i, f"column {self.columns[pos]!r}: {reason}")
        for pos in self.plan.required:
            if None in cols[pos]:
                for i, value in enumerate(cols[pos]):
                    if value is None:
                        errors.setdefault(i, f"column {self.columns[pos]!r} must not be empty")
        self._check_parents(cols, errors, records, chunk)
        held: list[Row] = []
        if self._held:
            held = list(zip(*(cols[p] for p in self._held), strict=True))
            for p in self._held:
                cols[p] = [None] * n
        rows: list[Row] = list(zip(*cols, strict=True))
        good = [i for i in range(n) if i not in errors] if errors else list(range(n))
        return _Batch(chunk, base, records, cols, rows, held, errors, good)

    def write(self, batch: _Batch) -> None:
        """Write the batch's good rows; the database's refusals join `batch.errors`."""
        if not batch.good:
            return
        rows = [batch.rows[i] for i in batch.good] if batch.errors else batch.rows
        ctx = self.ctx
        if ctx.simulate:
            batch.outcome = Outcome(created=len(rows))
            return

        target, copies = self.plan.target, self._copies

        def attempt(part: list[Row], fresh: bool) -> Outcome:
            if copies is None or fresh:
                return ctx.dialect.write(ctx.conn, target, part, fresh=fresh, mode=ctx.mode)
            add = copies.missing(part, lambda rows: ctx.dialect.count_copies(ctx.conn, target, rows))
            if add:
                ctx.dialect.write(ctx.conn, target, add, fresh=False, mode="insert")
            return Outcome(created=len(add), unchanged=len(part) - len(add))

        batch.outcome = bisect(
            ctx,
            rows,
            list(batch.good),
            batch.errors,
            attempt,
            target=target,
            fresh=self.plan.fresh,
            committed=copies.committed if copies is not None else self._count_in,
            landed=self._landed,
        )

    def _count_in(self, rows: int) -> None:
        self._in_table += rows

    def _landed(self, rows: list[Row]) -> bool:
        """After a commit whose answer was lost: are `rows` in the table? Asked only of a
        table without a key that this run found empty, so the rows it holds are the ones
        this run committed."""
        ctx = self.ctx
        sql = f"SELECT count(*) FROM {ctx.dialect.qualified(self.plan.target.table)}"
        held = int(ctx.dialect.execute(ctx.conn, sql).fetchone()[0])
        return held >= self._in_table + len(rows)

    def settle(self, batch: _Batch) -> None:
        """Count, report and checkpoint a written batch."""
        ctx, result, errors = self.ctx, self.result, batch.errors
        if batch.outcome is not None:
            result.created += batch.outcome.created
            result.updated += batch.outcome.updated
            result.unchanged += batch.outcome.unchanged
        if batch.held:
            self._defer(batch)
        for i in sorted(errors):
            record = batch.records[i] if batch.records[i] is not None else batch.chunk[i]
            self._fail(i, errors[i], record, batch, batch.base)
        n = len(batch.chunk)
        result.processed += n
        done = batch.base + n
        last = batch.records[-1] if batch.records else None
        ctx.progress.advance(self.plan.source, n, self.record_id(last, done - 1, batch.chunk[-1]))
        ctx.on_checkpoint(self.plan.source, done)
        ctx.report(ctx.progress)
        now = time.monotonic()
        if now - self._logged >= BATCH_LOG_SECONDS or done == self.plan.count:
            self._logged = now
            log.info(
                "[restore] %s: batch of %d (records %d-%d of %d) committed, %d failed",
                self.plan.source,
                n,
                batch.base + 1,
                done,
                self.plan.count,
                len(errors),
            )

    def _parse(self, chunk: list[Any], section: Section, base: int, errors: dict[int, str]) -> list[Any]:
        parse = section.parse
        if parse is None:
            return chunk
        data = b"[" + b",".join(chunk) + b"]"
        try:  # one orjson call for the whole batch
            parsed = orjson.loads(data)
            if len(parsed) == len(chunk):
                records = list(parsed)
                duplicate_keys(chunk, records, errors, data)
                if LONG_DIGITS.search(data):
                    exact_integers(chunk, records)
                return records
        except orjson.JSONDecodeError:
            pass
        records = []
        for i, item in enumerate(chunk):
            try:
                records.append(parse(item))
            except orjson.JSONDecodeError as exc:
                errors[i] = f"{section.where(base + i)} is not valid JSON ({exc})"
                records.append(None)
        duplicate_keys(chunk, records, errors, None)
        exact_integers(chunk, records)
        return records

    def _rows(self, records: list[Any], errors: dict[int, str]) -> list[Row]:
        try:
            if sum(map(len, records)) == self.width * len(records):
                if self.single:
                    return [(v,) for v in map(self._get, records)]
                return list(map(self._get, records))
        except (KeyError, TypeError):
            pass
        return [self._row(record, i, errors) for i, record in enumerate(records)]

    def _row(self, record: Any, i: int, errors: dict[int, str]) -> Row:
        if not isinstance(record, dict):
            errors.setdefault(i, "not a JSON object")
            return self._empty
        ignored = self.plan.ignored_keys
        extra = [k for k in record if k not in self._known and k not in ignored]
        if extra:
            errors.setdefault(i, "unknown column " + ", ".join(_shown(k) for k in extra[:10]))
        return tuple(record.get(k) for k in self.plan.keys)

    def _check_parents(
        self, cols: list[Sequence[Any]], errors: dict[int, str], records: list[Any], chunk: list[Any]
    ) -> None:
        for check in self.plan.parent_checks:
            failed = self.ctx.failures.get(check.parent, check.columns)
            if not failed:
                continue
            sources = [self.plan.keys[p] for p in check.positions]
            for i, key in enumerate(zip(*(cols[p] for p in check.positions), strict=True)):
                if frozen(key) in failed and i not in errors:
                    shown = as_written(records[i], sources, chunk[i]) if records[i] is not None else key
                    errors[i] = f"skipped: parent {check.parent}:{format_key(shown)} failed"

    # -- writing with bisection ------------------------------------------------------------

    def _fail(self, i: int, reason: str, record: Any, batch: _Batch, base: int) -> None:
        source, cols = self.plan.source, batch.cols
        message = f"{source}:{self.record_id(record, base + i, batch.chunk[i])} - {reason}"
        self.ctx.result.add_error(self.result, message)
        self.ctx.progress.add_error(message)
        self.ctx.rejects.add(source, record, reason)
        for columns, positions in self._referenced:
            key = tuple(
                cols[p][i] if cols[p][i] is not None else _raw(record, self.plan.keys[p]) for p in positions
            )
            self.ctx.failures.add(source, columns, key)

    def record_id(self, record: Any, position: int, raw: Any = None) -> str:
        """The record's key as the file spells it, else its position in the table."""
        if self._key_sources and isinstance(record, dict):
            values = [record.get(k) for k in self._key_sources]
            if all(v is not None for v in values):
                return format_key(as_written(record, self._key_sources, raw))
        return f"#{position + 1}"


def _shown(name: str, limit: int = 80) -> str:
    """A name from the file, quoted, and cut in the middle when it is long."""
    if len(name) <= limit:
        return repr(name)
    return repr(name[: limit // 2] + "…" + name[-limit // 4 :]) + f" ({len(name):,} characters)"


def _raw(record: Any, key: str) -> Any:
    return record.get(key) if isinstance(record, dict) else None


def bisect(
    ctx: LoadContext,
    rows: list[Row],
    idxs: list[int],
    errors: dict[int, str],
    attempt: Callable[[list[Row], bool], Outcome],
    *,
    target: Target | None = None,
    fresh: bool = False,
    committed: Callable[[int], None] | None = None,
    landed: Callable[[list[Row]], bool] | None = None,
) -> Outcome:
    """Write `rows` in one transaction; if the database refuses it, split until the refused
    rows are alone. Refusals land in `errors` under their `idxs`; `committed(n)` is called
    after each transaction of n rows that went through. Only the database's refusals are
    split: anything else raised on the way (a bug in rowvault) is raised as it is. A
    transient failure (a lost connection, a deadlock) is tried again on a new connection
    (`LoadContext.recover`); any other failure of the database itself stops the restore.

    A commit whose answer was lost may have gone through: a table with a key takes the rows
    again as an upsert (harmless); a fresh table without one asks `landed(rows)`."""
    total = Outcome()
    work: list[tuple[list[Row], list[int], bool]] = [(rows, idxs, fresh)]
    # A table without a key has no conflicts: a refusal of a fresh batch is the records' own.
    retry_as_upsert = target is None or bool(target.key)
    while work:
        part, part_idxs, part_fresh = work.pop()
        committing = False
        try:
            ctx.tx.begin()
            outcome = attempt(part, part_fresh)
            committing = True
            ctx.tx.commit()
        except Exception as exc:
            if ctx.recover(exc):
                if not (committing and part_fresh and not retry_as_upsert and landed and landed(part)):
                    work.append((part, part_idxs, part_fresh and not (committing and retry_as_upsert)))
                    continue
                outcome = Outcome(created=len(part))  # it was in before the answer was lost
            else:
                _rollback(ctx, exc)
                if not raised_by_driver(exc):
                    raise  # not the records' fault: the traceback is the report
                if not ctx.dialect.is_record_error(exc):
                    raise RestoreAborted(_failure(exc, ctx)) from exc
                if part_fresh and retry_as_upsert:  # perhaps rows already there: retry as an upsert
                    work.append((part, part_idxs, False))
                elif len(part) == 1:
                    errors[part_idxs[0]] = ctx.dialect.error_message(exc, target)
                else:
                    mid = len(part) // 2
                    work.append((part[mid:], part_idxs[mid:], part_fresh))
                    work.append((part[:mid], part_idxs[:mid], part_fresh))
                continue
        ctx.succeeded()
        if committed is not None:
            committed(len(part))
        total.created += outcome.created
        total.updated += outcome.updated
        total.unchanged += outcome.unchanged
    return total


def _rollback(ctx: LoadContext, cause: BaseException) -> None:
    try:
        ctx.tx.rollback()
    except Exception as exc:
        if raised_by_driver(cause) and not ctx.dialect.is_record_error(cause):
            # the same trouble (a lost connection), or nothing left to roll back (SQLite ends
            # the transaction itself on a full disk): what stopped the batch is the news
            raise RestoreAborted(_failure(cause, ctx)) from cause
        raise RestoreAborted(_failure(exc, ctx)) from exc


def _failure(exc: BaseException, ctx: LoadContext) -> str:
    """What stops a restore, in rowvault's words (`dberrors`), naming the database."""
    return str(translate(exc, url=ctx.result.database) or exc)


def apply_deferred(plan: TablePlan, ctx: LoadContext, result: TableResult, batch: int = 2000) -> None:
    """Fill in the foreign keys held back for cycles, now that every parent is written."""
    columns = [plan.target.columns[p] for d in plan.deferrals for p in d.positions]
    if not columns or ctx.simulate:
        return
    entries = ctx.deferred.entries(plan.source)

    def attempt(part: list[Row], fresh: bool) -> Outcome:
        ctx.dialect.fill_held(ctx.conn, plan.target, columns, part)
        return Outcome()

    while chunk := list(islice(entries, batch)):
        params = [values + key for key, values, _ in chunk]
        errors: dict[int, str] = {}
        bisect(ctx, params, list(range(len(chunk))), errors, attempt, target=plan.target)
        for i, reason in sorted(errors.items()):
            key, _, record = chunk[i]
            message = (
                f"{plan.source}:{format_key(key)} - {reason}; the row was kept with "
                f"{', '.join(columns)} empty"
            )
            ctx.result.add_error(result, message)
            ctx.progress.add_error(message)
            ctx.rejects.add(plan.source, record, reason)
