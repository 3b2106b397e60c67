"""The safety snapshot: what a restore is about to change, saved before it writes.

It saves only what the restore can change, table by table (the record says which is which):

- `rows`: a table the restore adds to or upserts into (modes upsert, insert, skip). Its rows
  whose keys appear in the backup file - those the restore may overwrite - are saved, and the
  file's keys that no row holds - the rows it will insert - are noted (a second file of keys
  only: the backup itself may be an upload, deleted once the restore is done). The key is the
  one the restore matches rows on (`plan.py`: primary key, else a unique key).
- `empty`: a table that held no rows. Nothing is saved: undo deletes what is there.
- `created`: a table the restore creates. Nothing is saved: undo empties it.
- `whole`: a table without such a key (no primary or unique key, one whose columns may be
  NULL, or one the file lacks): the restore matches its rows on all their columns, so no key
  says which rows are new. The whole table is saved, and undo puts it back whole.
- `replace` mode deletes the tables' rows, so those tables are saved whole and undo is a
  restore of the snapshot in `replace` mode, as it always was (`mode: replace`; snapshots
  from before this scheme have no `mode` and are undone the same way).

The keys are read from the file and staged in temporary tables, and the rows picked with one
statement per table (`keyrows`). Into an empty database nothing is read or written.
Undo is in `undo.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..backup import backup
from ..dialects import Dialect, dialect_for
from ..file.reader import BackupFile, FileSummary
from ..load.ordering import Edge, plan_order
from ..load.plan import RestorePlan, TablePlan
from ..options import BackupOptions, RestoreOptions
from ..progress import Progress, ProgressCallback, null_progress
from ..restore import validate
from ..schema import Schema, reflect
from .keyrows import Keyed, KeyStage, Part, write_file

log = logging.getLogger("rowvault.jobs")
INSERTED_NAME = "inserted.json.gz"


def take_snapshot(
    engine: sa.Engine,
    source: Path,
    summary: FileSummary | None,
    options: RestoreOptions,
    dest: Path,
    progress: ProgressCallback = null_progress,
) -> dict[str, Any]:
    """Save what the restore of `source` can change (see the module docstring); `progress`
    sees a progress record of the keys read and rows saved. Returns the snapshot's record."""
    summary = summary or BackupFile(source).scan()
    check = RestoreOptions(mode=options.mode, dry_run=True, skip_unknown=options.skip_unknown)
    plan = validate(engine, source, options=check, summary=summary)
    created = [tp.name for tp in plan.tables if tp.create]
    dest.parent.mkdir(parents=True, exist_ok=True)
    if options.mode == "replace":
        tables = [tp.name for tp in plan.tables if not tp.create]
        if tables:
            written = backup(engine, dest, options=BackupOptions(tables=tables), progress=progress)
            log.info(
                "[restore] safety snapshot of %d rows in %d tables: %s", written.total, len(tables), dest
            )
        return {"path": str(dest), "tables": tables, "created": created, "mode": "replace"}
    file = BackupFile(source, name=summary.name)
    taken = _RowSnapshot(engine, file, summary, plan=plan, dest=dest, progress=progress)
    return taken.take(created, options.mode)


class _RowSnapshot:
    """One snapshot of the rows a restore in mode upsert, insert or skip can change."""

    def __init__(
        self,
        engine: sa.Engine,
        file: BackupFile,
        summary: FileSummary,
        *,
        plan: RestorePlan,
        dest: Path,
        progress: ProgressCallback,
    ) -> None:
        self.engine = engine
        self.file = file
        self.summary = summary
        self.plan = plan
        self.dest = dest
        self.report = progress
        self.dialect: Dialect = dialect_for(engine)
        with engine.connect() as conn:
            self.schema: Schema = reflect(conn, self.dialect.json_columns(conn.connection.driver_connection))
        self.state = Progress()

    def take(self, created: list[str], mode: str) -> dict[str, Any]:
        written = [tp for tp in self.plan.tables if not tp.create and tp.count > 0]
        record: dict[str, Any] = {"path": str(self.dest), "tables": [], "created": created, "mode": mode}
        record.update(empty=[], rows=[], whole=[], inserted=None)
        if written:  # else (an empty database) nothing is read, nothing written
            conn = self.dialect.connect()
            try:
                keyed, whole = self._sort(conn, written, record)
                if keyed or whole:
                    self._save(conn, keyed, whole, record)
            finally:
                self.dialect.release(conn)
        self.state.finish("completed")
        self.report(self.state)
        log.info(
            "[restore] safety snapshot taken: %d tables by key, %d whole, %d empty, %d created: %s",
            len(record["rows"]),
            len(record["whole"]),
            len(record["empty"]),
            len(created),
            self.dest,
        )
        return record

    def _sort(
        self, conn: Any, written: list[TablePlan], record: dict[str, Any]
    ) -> tuple[list[Keyed], list[str]]:
        """The tables by what is saved of them: keyed, whole, or (empty) nothing."""
        keyed: list[Keyed] = []
        whole: list[str] = []
        for tp in written:
            if self.dialect.table_is_empty(conn, self.schema.tables[tp.name]):
                record["empty"].append(tp.name)
            elif (found := self._keyed(tp)) is not None:
                keyed.append(found)
            else:
                whole.append(tp.name)
        return keyed, whole

    def _keyed(self, tp: TablePlan) -> Keyed | None:
        """The table's key as the restore matches on it, if it identifies rows: none when the
        table has no key, or the file lacks it, or a key column may be NULL (rows with NULL
        there never match, so such a key cannot tell the rows a restore inserted)."""
        spec = self.schema.specs[tp.name]
        key = tuple(tp.target.key)
        columns = [spec.column(k) for k in key]
        if not key or any(c is None or c.nullable for c in columns):
            return None
        positions = [tp.target.columns.index(k) for k in key]
        return Keyed(
            table=self.schema.tables[tp.name],
            spec=spec,
            key=key,
            source=tp.source,
            fields=tuple(tp.keys[p] for p in positions),
            decoders=tuple(tp.decoders[p] for p in positions),
        )

    def _save(self, conn: Any, keyed: list[Keyed], whole: list[str], record: dict[str, Any]) -> None:
        dialect, stage = self.dialect, KeyStage(self.dialect, conn)
        totals = {k.name: self.summary.tables[k.source].count for k in keyed}
        for name in whole:  # its rows, written as they are read
            count = f"SELECT count(*) FROM {dialect.qualified(self.schema.tables[name])}"
            totals[name] = int(dialect.execute(conn, count).fetchone()[0])
        self.state.start(totals)
        self.report(self.state)
        for k in keyed:
            stage.create(k)
        if keyed:
            stage.load(self.file, self.summary.layout, keyed, self._advance)
        by_name = {k.name: k for k in keyed}
        order = self._parents_first([*by_name, *whole])
        parts = [Part(self.schema.specs[n], _rows(self.schema.tables[n], by_name, stage)) for n in order]
        inserted = self.dest.with_name(INSERTED_NAME)
        dialect.begin_snapshot(conn)
        try:
            saved = write_file(dialect, conn, self.dest, parts, self._written(set(whole)))
            noted = {}
            if keyed:
                keys = [Part(k.key_spec(), stage.missing(k)) for k in keyed]
                noted = write_file(dialect, conn, inserted, keys)
        finally:
            dialect.rollback(conn)
        record["tables"] = order
        record["rows"] = [k.name for k in keyed]
        record["whole"] = whole
        record["inserted"] = str(inserted) if keyed else None
        log.info(
            "[restore] safety snapshot: %d rows saved, %d keys to be inserted noted",
            sum(saved.values()),
            sum(noted.values()),
        )

    def _advance(self, table: str, n: int) -> None:
        self.state.advance(table, n)
        self.report(self.state)

    def _written(self, whole: set[str]) -> Any:
        def written(table: str, n: int) -> None:
            if table in whole:  # a keyed table's progress is its keys read
                self._advance(table, n)

        return written

    def _parents_first(self, names: list[str]) -> list[str]:
        return parents_first(self.schema, names)


def _rows(table: sa.Table, keyed: dict[str, Keyed], stage: KeyStage) -> Any:
    select = sa.select(*table.columns)
    found = keyed.get(str(table.name))
    return select.where(stage.holding(found)) if found is not None else select


def parents_first(schema: Schema, names: list[str]) -> list[str]:
    edges = [
        Edge(name, fk.ref_table, i, True)
        for name in names
        for i, fk in enumerate(schema.specs[name].foreign_keys)
    ]
    return plan_order(names, edges).tables
