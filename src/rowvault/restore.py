"""`restore(db, source)`: check the whole file, fit it to the target, then write it in batches.

Nothing is written until the file has been read end to end and every table and column has
found its place in the target (or a ValidationError lists every one that did not). Then:
create missing tables (noting in the target that their indexes and foreign keys are owed:
`pending`), write the tables parents-first, fill in the foreign keys held back for cycles,
give created tables - and those an earlier run created and left owing - their indexes and
foreign keys, move auto-increment counters past the restored keys.

`replace` empties the restored tables first, but never deletes a row that rows of other
tables still refer to: that row is updated in place, and a kept row the backup lacks is a
warning naming the tables that hold it (`plan._holders` says why).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

from .database import DatabaseLike, opened
from .dberrors import raised_by_driver, translate
from .dialects import Dialect, dialect_for
from .errors import RestoreAborted, ValidationError
from .file.format import Section, Source
from .file.reader import BackupFile, FileSummary
from .file.rejects import Rejects, default_rejects_path
from .load import pending
from .load.batching import BatchSizer, Transactions
from .load.columnar import DuckReader, columnar_loader
from .load.lanes import Lanes
from .load.orphans import add_foreign_key, keeps_orphans, orphan_reports
from .load.pending import PendingDDL
from .load.plan import RestorePlan, TablePlan, build_plan
from .load.rows import LoadContext, TableLoader, apply_deferred
from .options import RestoreOptions
from .progress import Progress, ProgressCallback, null_progress
from .results import RestoreResult, TableResult
from .retry import Retries, Retrying
from .schema import Schema, build_table, index, link_foreign_keys, reflect

log = logging.getLogger("rowvault.restore")


@dataclass(frozen=True)
class Resume:
    """Where an earlier run of the same restore stopped."""

    done: Mapping[str, int] = field(default_factory=dict)
    """Records already written, per table (the checkpoint)."""
    created: Collection[str] = ()
    """Tables that run created: they still get their indexes and foreign keys."""


def validate(
    db: DatabaseLike,
    source: Source,
    *,
    options: RestoreOptions | None = None,
    summary: FileSummary | None = None,
) -> RestorePlan:
    """Check `source` against `db` without writing; raises BackupFileError or ValidationError.
    `summary` is the result of `BackupFile(source).scan()` if the caller already ran it."""
    options = options or RestoreOptions()
    summary = summary or BackupFile(source).scan()
    with opened(db, read_only=True) as database:
        dialect = dialect_for(database.engine)
        plan, _ = _plan(database.engine, dialect, summary, options)
    if plan.problems:
        raise ValidationError(summary.name, plan.problems)
    return plan


def restore(
    db: DatabaseLike,
    source: Source,
    *,
    options: RestoreOptions | None = None,
    progress: ProgressCallback = null_progress,
    should_stop: Callable[[], bool] | None = None,
    on_checkpoint: Callable[[str, int], None] | None = None,
    resume: Resume | Mapping[str, int] | None = None,
    on_error: Callable[[str], None] | None = None,
    on_created: Callable[[list[str]], None] | None = None,
    summary: FileSummary | None = None,
    **option_kwargs: Any,
) -> RestoreResult:
    """Restore the backup `source` (path or seekable binary stream) into `db`.

    Options come as `options=RestoreOptions(...)` or as keywords (`mode="skip"`,
    `batch_size=5000`, ...). `progress` receives the progress record after every batch.
    Record errors do not raise: they are in the result (and the rejects file). Raises
    BackupFileError / ValidationError before writing anything, RestoreAborted if the
    database fails or `should_stop()` turns true part-way. `on_error` sees every record
    error, `on_created` the tables created; `summary` is the result of
    `BackupFile(source).scan()` if the caller already ran it; `resume` continues a run that
    stopped (records done per table, tables it created).
    """
    if resume is not None and not isinstance(resume, Resume):
        resume = Resume(done=dict(resume))
    options = options or RestoreOptions(**option_kwargs)
    started = time.perf_counter()
    state = Progress(error_sink=on_error)
    file = BackupFile(source, name=summary.name if summary else None)
    log.info("[restore] reading %s", file.name)
    summary = summary or file.scan()
    log.info("[restore] %s: %d records in %d tables", summary.name, summary.total, len(summary.tables))
    with opened(db, writes=not options.dry_run) as database:
        dialect = dialect_for(database.engine)
        created_before = set(resume.created) if resume else set()
        plan, owed = _plan(database.engine, dialect, summary, options, created_before)
        if plan.problems:
            raise ValidationError(summary.name, plan.problems)
        result = RestoreResult(summary.name, database.display_url, dry_run=options.dry_run)
        result.skipped_tables = list(plan.skipped_tables)
        result.skipped_columns = dict(plan.skipped_columns)
        result.warnings = list(plan.warnings)
        for warning in plan.warnings:
            log.warning("[restore] %s", warning)
        for tp in plan.tables:
            result.tables[tp.source] = TableResult(
                tp.source, tp.name, total=tp.count, created_table=tp.create
            )
        run = _Run(database.engine, dialect, file, summary, plan, options, result, state, progress)
        run.on_created = on_created
        run.owed = owed
        run.execute(should_stop, on_checkpoint, dict(resume.done) if resume else {})
    result.seconds = time.perf_counter() - started
    log.info(
        "[restore] %s: %d of %d records in %.1fs, %d errors",
        result.status,
        result.processed,
        result.total,
        result.seconds,
        result.error_count,
    )
    return result


def _plan(
    engine: sa.Engine,
    dialect: Dialect,
    summary: FileSummary,
    options: RestoreOptions,
    created_before: Collection[str] = (),
) -> tuple[RestorePlan, PendingDDL]:
    """The plan, and the DDL earlier runs left owing: their tables count as created before."""
    with engine.connect() as conn:
        schema = reflect(conn, dialect.json_columns(conn.connection.driver_connection))
        owed = pending.take(conn, schema, dialect.name)
    held = {name: spec for name, spec in owed.specs.items() if name in schema.specs}
    plan = build_plan(
        summary, schema, dialect.name, options, created_before={*created_before, *held}, created_from=held
    )
    planned = {tp.name for tp in plan.tables}
    plan.warnings += [
        f"table {name!r}: a restore that stopped created it without its indexes and foreign keys; "
        "restore that table again to add them"
        for name in held
        if name not in planned
    ]
    return plan, owed


def _reflect(engine: sa.Engine, dialect: Dialect) -> Schema:
    with engine.connect() as conn:
        schema = reflect(conn, dialect.json_columns(conn.connection.driver_connection))
        pending.take(conn, schema, dialect.name)
        return schema


class _Run:
    """One restore's writing phase."""

    def __init__(
        self,
        engine: sa.Engine,
        dialect: Dialect,
        file: BackupFile,
        summary: FileSummary,
        plan: RestorePlan,
        options: RestoreOptions,
        result: RestoreResult,
        state: Progress,
        report: ProgressCallback,
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.file = file
        self.summary = summary
        self.plan = plan
        self.options = options
        self.result = result
        self.state = state
        self.report = report
        self.on_created: Callable[[list[str]], None] | None = None
        self.owed = PendingDDL()
        self.in_place: set[str] = set()
        """Tables written as upserts although the mode is `replace` (rows were kept)."""
        self.kept: dict[str, int] = {}
        self.duck = DuckReader()
        parallel = options.jobs > 1 and dialect.parallel_lanes and not options.dry_run
        self.lanes = Lanes(dialect, options.jobs) if parallel else None

    def execute(
        self,
        should_stop: Callable[[], bool] | None,
        on_checkpoint: Callable[[str, int], None] | None,
        resume: dict[str, int],
    ) -> None:
        options, dialect = self.options, self.dialect
        self.state.start({tp.source: tp.count for tp in self.plan.tables})
        self.report(self.state)
        beside = isinstance(self.file.source, (str, os.PathLike))
        rejects_path = options.rejects_path or (
            default_rejects_path(self.summary.name)
            if beside
            else Path(tempfile.gettempdir()) / f"rowvault-rejects-{uuid.uuid4().hex}.json"
        )
        rejects = Rejects(Path(rejects_path), self.summary.metadata)
        report = _one_at_a_time(self.report)  # the writer thread reports its retries too

        def retrying(state: Retrying | None) -> None:
            self.state.retrying = state.to_dict() if state else None
            report(self.state)

        conn = dialect.connect()
        tx = Transactions(dialect, conn, dry_run=options.dry_run)
        ctx = LoadContext(
            dialect=dialect,
            conn=conn,
            tx=tx,
            mode=options.mode,
            result=self.result,
            progress=self.state,
            report=report,
            rejects=rejects,
            sizer=BatchSizer(options.batch_size, target_seconds=options.target_batch_seconds),
            delay_seconds=options.batch_delay_ms / 1000,
            should_stop=should_stop or (lambda: False),
            on_checkpoint=on_checkpoint or (lambda table, done: None),
            retries=None
            if options.dry_run
            else Retries(options.retries, first_wait=options.retry_wait_seconds, on_change=retrying),
        )
        if dialect.pipelined and not options.batch_delay_ms:
            ctx.pipeline = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rowvault-writer")
        status = "error"
        try:
            tx.start()
            simulated = self._prepare_tables(ctx, resume)
            self._phase(ctx, "data")
            self._load(ctx, resume, simulated)
            held = [tp for tp in self.plan.tables if tp.deferrals and tp.source not in simulated]
            if held:
                self._phase(ctx, "deferred", len(held))
            for done, tp in enumerate(held, 1):
                apply_deferred(tp, ctx, self.result.tables[tp.source])
                self._step(ctx, done)
            self._report_kept()
            if not options.dry_run:
                self._finish_created_tables(ctx)
                names = [tp.name for tp in self.plan.tables]
                self._phase(ctx, "counters")
                ctx.run(lambda conn: dialect.advance_sequences(conn, list(self._real_tables(names).values())))
            status = "completed"
        except RestoreAborted as exc:
            status = "cancelled" if exc.cancelled else "error"
            exc.result = self.result
            raise
        except Exception as exc:
            if not raised_by_driver(exc) and not isinstance(exc, OSError):
                raise  # a bug in rowvault: not the database's failure
            cause = translate(exc, url=self.result.database)
            if cause is not None:
                reason = str(cause)
            elif isinstance(exc, OSError):
                reason = f"a file could not be written: {exc}"
            else:
                reason = f"the database failed: {dialect.error_message(exc)}"
            raise RestoreAborted(reason, result=self.result) from exc
        finally:
            self.result.status = status
            self.result.retries = ctx.retries.total if ctx.retries else 0
            self.state.retrying = None
            try:
                tx.finish()
            finally:
                if ctx.pipeline is not None:
                    ctx.pipeline.shutdown(wait=True)
                ctx.deferred.close()
                self.duck.close()
                if self.lanes is not None:
                    self.lanes.close()
                self.result.rejects_path = rejects.close()
                dialect.release(ctx.conn)
                self.state.finish(status)  # type: ignore[arg-type]
                self.report(self.state)

    def _phase(self, ctx: LoadContext, name: str, total: int | None = None) -> None:
        self.state.enter_phase(name, total)
        ctx.report(self.state)

    def _step(self, ctx: LoadContext, done: int) -> None:
        self.state.step_phase(done)
        ctx.report(self.state)

    # -- before the data ---------------------------------------------------------------------

    def _prepare_tables(self, ctx: LoadContext, resume: dict[str, int]) -> set[str]:
        """Create missing tables, empty tables for `replace`, spot empty ones. Returns the
        tables that can only be simulated (dry run on an engine without transactional DDL)."""
        dialect, options = self.dialect, self.options
        simulated: set[str] = set()
        if self.plan.created:
            if options.dry_run and dialect.name == "mysql":
                simulated = {tp.source for tp in self.plan.created}
            else:
                self._phase(ctx, "creating", len(self.plan.created))
                self._in_transaction(ctx, self._create_tables)
                self._step(ctx, len(self.plan.created))
                if self.on_created is not None:
                    self.on_created([tp.name for tp in self.plan.created])
        if options.mode == "replace" and not resume:
            self._in_transaction(ctx, self._empty_for_replace)
        elif options.mode == "replace":  # the stopped run emptied them: what is there is ours
            self.in_place.update(tp.name for tp in self.plan.tables)
        elif not resume:
            for tp in self.plan.tables:
                if not tp.create and ctx.run(partial(_is_empty, dialect, tp.target.table)):
                    tp.fresh = True
        if resume:
            for tp in self.plan.tables:
                tp.fresh = False
        return simulated

    def _empty_for_replace(self, conn: Any) -> None:
        """Empty the tables to replace, but for the rows other tables' rows still refer to
        (`plan._holders`): those stay, to be updated in place."""
        dialect = self.dialect
        existing = [tp for tp in self.plan.tables if not tp.create]
        partly = [tp for tp in existing if tp.held_by]
        tables = self._real_tables(
            sorted({n for tp in partly for n in (tp.name, *(c for c, _ in tp.held_by))})
        )
        for tp in existing:  # cycles first: their held-back keys would block deletes
            held = [c for d in tp.deferrals for c in d.columns]
            if held:
                dialect.clear_columns(conn, tp.target.table, held)
        for tp in reversed([tp for tp in existing if not tp.held_by]):
            dialect.delete_all(conn, tp.target.table)
        for tp in reversed(partly):
            table = tables[tp.name]
            holders = [
                fk
                for child, spec in tp.held_by
                for fk in tables[child].foreign_key_constraints
                if fk.referred_table is table and [e.parent.name for e in fk.elements] == list(spec.columns)
            ]
            dialect.delete_all(conn, table, unless_referenced_by=holders)
            kept = int(
                dialect.execute(conn, f"SELECT count(*) FROM {dialect.qualified(table)}").fetchone()[0]
            )
            if kept:
                self.kept[tp.name] = kept
                self.in_place.add(tp.name)
                tp.fresh = False

    def _report_kept(self) -> None:
        """A warning per replaced table that kept rows the backup does not have."""
        for tp in self.plan.tables:
            if tp.name not in self.kept:
                continue
            table_result = self.result.tables[tp.source]
            extra = self.kept[tp.name] - table_result.updated - table_result.unchanged
            if extra <= 0:
                continue
            holders = sorted({child for child, _ in tp.held_by if child != tp.name}) or [tp.name]
            held = [c for d in tp.deferrals for c in d.columns]
            warning = (
                f"table {tp.source!r}: {extra} row(s) that are not in the backup were kept, "
                f"because rows of {', '.join(map(repr, holders))} refer to them"
                + (f" (their {', '.join(held)} emptied)" if held else "")
                + "; restore those tables too to replace them as well"
            )
            log.warning("[restore] %s", warning)
            self.result.warnings.append(warning)

    def _in_transaction(self, ctx: LoadContext, work: Callable[[Any], None]) -> None:
        """`work(conn)` in a transaction of its own; again on a new connection after a
        transient failure."""

        def once(conn: Any) -> None:
            ctx.tx.begin()
            try:
                work(conn)
            except Exception:
                with suppress(Exception):  # a lost connection cannot roll back: keep the real cause
                    ctx.tx.rollback()
                raise
            ctx.tx.commit()

        ctx.run(once)
        ctx.succeeded()

    def _create_tables(self, conn: Any) -> None:
        schema = _reflect(self.engine, self.dialect)
        # Only a second attempt finds one there: MariaDB's DDL commits itself, table by table.
        todo = [tp for tp in self.plan.created if tp.name not in schema.specs]
        tables = [
            build_table(
                tp.spec, schema.metadata, self.dialect.name, source_dialect=self.summary.source_dialect
            )
            for tp in todo
        ]
        if self.dialect.name == "sqlite":  # SQLite's foreign keys are declared with the table
            for tp, table in zip(todo, tables, strict=True):
                link_foreign_keys(tp.spec, table, schema.metadata.tables)
        pending.record(self.dialect, conn, [tp.spec for tp in self.plan.created])
        self.owed.exists = True
        for table in tables:  # all built first: SQLite's foreign keys may point forward
            log.info("[restore] creating table %s", table.name)
            self.dialect.execute(conn, str(CreateTable(table).compile(dialect=self.engine.dialect)))

    # -- the data --------------------------------------------------------------------------

    def _load(self, ctx: LoadContext, resume: dict[str, int], simulated: set[str]) -> None:
        by_source = {tp.source: tp for tp in self.plan.tables}
        order = [tp.source for tp in self.plan.tables]
        with self.file.sections(self.summary.layout) as sections:
            for section in in_plan_order(sections, order):
                tp = by_source[section.name]
                done = resume.get(tp.source, 0)
                table_result = self.result.tables[tp.source]
                if done:
                    table_result.processed = done
                    self.state.advance(tp.source, done)
                    # a table with held-back foreign keys is read to its end even so: its
                    # held-back values lived in the stopped run's memory (`_hold_again`)
                    if done >= tp.count and not tp.deferrals:
                        continue
                if tp.count == 0:  # an empty array: nothing to write (replace emptied it)
                    continue
                self.state.enter_table(tp.source)
                self.report(self.state)
                log.info("[restore] table %s -> %s: %d records", tp.source, tp.name, tp.count)
                ctx.simulate = tp.source in simulated
                ctx.mode = "upsert" if tp.name in self.in_place else self.options.mode
                checked_later = tp.new_table and not self.options.dry_run
                if checked_later:  # a new table's foreign keys are checked once it is full
                    unchecked = partial(self.dialect.enforce_foreign_keys, on=False)
                    ctx.run(unchecked)
                    ctx.session["foreign keys"] = unchecked
                try:
                    self._loader(tp, ctx, table_result, section).run(section, skip=done)
                finally:
                    if checked_later:
                        ctx.session.pop("foreign keys", None)
                        with suppress(Exception):  # a new connection checks them anyway
                            self.dialect.enforce_foreign_keys(ctx.conn, True)
                ctx.simulate = False
                log.info(
                    "[restore] table %s done: %d created, %d updated, %d unchanged, %d failed",
                    tp.source,
                    table_result.created,
                    table_result.updated,
                    table_result.unchanged,
                    table_result.failed,
                )

    def _loader(self, tp: TablePlan, ctx: LoadContext, result: TableResult, section: Section) -> TableLoader:
        """The columnar path where it takes the table, else the row path."""
        if self.options.columnar:
            loader = columnar_loader(tp, ctx, result, section, self.duck, self.lanes)
            if loader is not None:
                return loader
        return TableLoader(tp, ctx, result)

    # -- after the data ----------------------------------------------------------------------

    def _finish_created_tables(self, ctx: LoadContext) -> None:
        created = [tp for tp in self.plan.tables if tp.new_table]
        if not created:
            self._settle_owed(ctx, [])
            return
        names = [tp.name for tp in self.plan.tables]
        steps = sum(len(tp.spec.indexes) + len(tp.spec.foreign_keys) for tp in created)
        self._phase(ctx, "indexes", steps)
        tables = ctx.run(lambda conn: self._real_tables(names))
        compile_ = self.engine.dialect
        done = 0
        for tp in created:
            table = tables[tp.name]
            spec = tp.spec
            for ix in spec.indexes:
                log.info("[restore] indexing %s (%s)", tp.name, ", ".join(ix.columns))
                sql = str(CreateIndex(index(table, ix)).compile(dialect=compile_))
                self._once(ctx, partial(_execute, self.dialect, sql))
                done += 1
                self._step(ctx, done)
            for fk in spec.foreign_keys:
                done += 1
                self._step(ctx, done)
                if fk.ref_table in tables:
                    orphans: list[Any] = []
                    kept = keeps_orphans(tp, fk, tables[tp.name])
                    add = partial(add_foreign_key, self.dialect, tp, tables, fk, orphans, kept)
                    self._once(ctx, add)
                    if orphans:  # reported once the constraint is in: a retry finds them again
                        self._reject_orphans(ctx, tp, tables[tp.name], fk, orphans, kept=kept)
        self._settle_owed(ctx, [tp.name for tp in created])

    def _settle_owed(self, ctx: LoadContext, done: list[str]) -> None:
        """Strike the tables whose DDL is in (and entries for tables that do not exist) from
        the target's bookkeeping (`pending`)."""
        if not self.owed.exists:
            return
        existing = ctx.run(lambda conn: self._table_names())
        gone = [name for name in self.owed.specs if name not in existing]
        self._in_transaction(ctx, lambda conn: pending.settle(self.dialect, conn, [*done, *gone]))

    def _table_names(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())

    def _once(self, ctx: LoadContext, work: Callable[[Any], Any]) -> None:
        """DDL that a resumed run may find already done."""
        try:
            self._in_transaction(ctx, work)
        except Exception as exc:
            text = str(exc).lower()
            if "already exists" not in text and "duplicate" not in text:
                raise
            log.info("[restore] already there: %s", str(exc).splitlines()[0])

    def _reject_orphans(
        self, ctx: LoadContext, tp: TablePlan, child: sa.Table, fk: Any, rows: list[Any], *, kept: bool
    ) -> None:
        parent_source = next((p.source for p in self.plan.tables if p.name == fk.ref_table), fk.ref_table)
        table_result = self.result.tables[tp.source]
        reports = orphan_reports(
            self.dialect.name, tp, child, fk, rows, parent_source=parent_source, kept=kept
        )
        for report in reports:
            self.result.add_error(table_result, report.message)
            self.state.add_error(report.message)
            ctx.rejects.add(tp.source, report.record, report.reason)
            if not kept:
                table_result.created -= 1

    def _real_tables(self, names: list[str]) -> dict[str, sa.Table]:
        metadata = sa.MetaData()
        with self.engine.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            metadata.reflect(bind=conn, only=[n for n in names if n in existing])
        return dict(metadata.tables)


def in_plan_order(sections: Iterator[Section], order: list[str]) -> Iterator[Section]:
    """Yield the sections in `order`; a section that comes too early in the file is spooled to
    a temporary file until its turn, so files with tables in any order still stream."""
    wanted = set(order)
    pending: dict[str, Section] = {}
    i = 0
    for section in sections:
        if section.name not in wanted:
            continue
        if section.name != order[i]:
            pending[section.name] = _spool(section)
            continue
        yield section
        i += 1
        while i < len(order) and order[i] in pending:
            yield pending.pop(order[i])
            i += 1
    while i < len(order) and order[i] in pending:
        yield pending.pop(order[i])
        i += 1


def _spool(section: Section) -> Section:
    spool = tempfile.TemporaryFile()
    if section.parse is None:
        for record in section.items:
            spool.write(orjson.dumps(record) + b"\n")
    else:
        for item in section.items:
            spool.write(item + b"\n")
    spool.seek(0)

    def lines() -> Iterator[bytes]:
        with spool:
            for line in spool:
                yield line.rstrip(b"\n")

    return Section(section.name, lines(), orjson.loads, section.first_line)


def _one_at_a_time(report: ProgressCallback) -> ProgressCallback:
    """`report`, never entered by two threads at once."""
    lock = threading.Lock()

    def serialized(progress: Progress, /) -> None:
        with lock:
            report(progress)

    return serialized


def _is_empty(dialect: Dialect, table: sa.Table, conn: Any) -> bool:
    return dialect.table_is_empty(conn, table)


def _execute(dialect: Dialect, sql: str, conn: Any) -> None:
    dialect.execute(conn, sql)
