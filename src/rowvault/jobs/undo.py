"""Undoing a restore with its safety snapshot (`snapshot`).

A snapshot of whole tables (mode `replace`, and snapshots older than the one by key) is
undone by a restore of it in `replace` mode - each table back to what it held - after
emptying the tables the restore created. Replace keeps the rows that other tables' rows
refer to and puts the snapshot's values back in place, so this works for a backup of a few
tables too.

A snapshot by key is undone around a restore of it in `upsert` mode, which puts the saved
rows back in place (`undo_before`, the restore, `undo_after`):

- before it, the rows the undone restore inserted (its noted keys, and every row of a table
  that was empty) are deleted where no row refers to them, and the tables saved whole are
  emptied the same way (the restore puts their rows back; a row kept is updated in place);
- after it, the inserted rows are deleted again: the rows just put back no longer refer to
  them. A row still referred to is one some other row has come to refer to since: it is kept,
  with a warning.

Deleting only rows that nothing refers to means undo never deletes by cascade and never
fails on a foreign key. Rows being deleted that refer to each other (a self-reference, a
cycle) first have the nullable foreign keys that close the cycle emptied; a cycle of NOT NULL
keys is let go of leaf rows first, a pass at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..codec import restore_decoder
from ..dialects import Dialect, dialect_for
from ..file.format import open_stream, read_metadata_line
from ..file.reader import BackupFile
from ..load.ordering import Edge, Order, plan_order
from ..schema import Schema, reflect
from .keyrows import Keyed, KeyStage, compiled

log = logging.getLogger("rowvault.jobs")
Conditions = dict[str, Any]
"""Per table, which rows to delete: a condition, or None for every row."""


def by_key(snapshot: dict[str, Any] | None) -> bool:
    """Whether `snapshot` saved rows by key (else it holds whole tables)."""
    return bool(snapshot) and snapshot.get("mode") not in (None, "replace")  # type: ignore[union-attr]


def undo_before(engine: sa.Engine, snapshot: dict[str, Any]) -> None:
    """Delete the inserted rows nothing refers to, and empty the tables saved whole."""
    _delete(engine, snapshot, whole=True)


def undo_after(engine: sa.Engine, snapshot: dict[str, Any]) -> list[str]:
    """Delete the inserted rows left (a snapshot of whole tables: the rows the snapshot does
    not hold, that `replace` kept because rows referred to them while it emptied the
    tables); returns a warning per table that keeps some."""
    kept = _delete(engine, snapshot, whole=False) if by_key(snapshot) else _delete_extra(engine, snapshot)
    warnings = [
        f"table {name!r}: {n} row(s) the undone restore added were kept, because rows added "
        "since refer to them"
        for name, n in kept.items()
    ]
    for warning in warnings:
        log.warning("[restore] %s", warning)
    return warnings


def empty_tables(engine: sa.Engine, names: list[str]) -> None:
    """Delete every row of these tables (those the undone restore created), children before
    parents, in one transaction; foreign keys that close a cycle emptied first."""
    if not names:
        return
    with engine.begin() as conn:
        schema = reflect(conn)
        order = _order(schema, [n for n in names if n in schema.specs])
        for edge in order.deferred:
            if edge.nullable:
                table = schema.tables[edge.child]
                columns = schema.specs[edge.child].foreign_keys[edge.key].columns
                conn.execute(table.update().values({c: None for c in columns}))
        for name in reversed(order.tables):
            conn.execute(schema.tables[name].delete())
    log.info("[restore] emptied the tables the undone restore created: %s", ", ".join(names))


def _delete(engine: sa.Engine, snapshot: dict[str, Any], *, whole: bool) -> dict[str, int]:
    dialect = dialect_for(engine)
    with engine.connect() as sa_conn:
        schema = reflect(sa_conn, dialect.json_columns(sa_conn.connection.driver_connection))
    everything = [*snapshot.get("empty", []), *(snapshot.get("whole", []) if whole else [])]
    conn = dialect.connect()
    try:
        stage = KeyStage(dialect, conn, "rowvault_added")
        inserted = _stage_keys(snapshot.get("inserted"), schema, stage)
        conditions: Conditions = {k.name: stage.holding(k) for k in inserted}
        conditions.update({name: None for name in everything if name in schema.specs})
        cycles = _held_back(schema, snapshot) if whole else {}
        if not conditions and not cycles:
            return {}
        saved = KeyStage(dialect, conn, "rowvault_saved")
        clear = {k.name: saved.holding(k) for k in _stage_keys(snapshot["path"], schema, saved, set(cycles))}
        clear.update({name: None for name in cycles if name not in snapshot.get("rows", [])})
        dialect.begin(conn)
        try:
            _clear(dialect, conn, schema, {n: cycles[n] for n in clear}, clear)
            kept = delete_unreferenced(dialect, conn, schema, conditions)
        except BaseException:
            dialect.rollback(conn)
            raise
        dialect.commit(conn)
        return {name: n for name, n in kept.items() if n}
    finally:
        dialect.release(conn)


def _delete_extra(engine: sa.Engine, snapshot: dict[str, Any]) -> dict[str, int]:
    """After a restore of whole tables in `replace` mode: delete, where nothing refers to
    them, the rows of the tables that hold more rows than the snapshot saved."""
    path = Path(snapshot["path"])
    saved = _saved_counts(path) if snapshot.get("tables") and path.exists() else {}
    dialect = dialect_for(engine)
    with engine.connect() as sa_conn:
        schema = reflect(sa_conn, dialect.json_columns(sa_conn.connection.driver_connection))
    conn = dialect.connect()
    try:
        grown = set()
        for name, count in saved.items():
            held = (
                sa.select(sa.func.count()).select_from(schema.tables[name]) if name in schema.specs else None
            )
            if held is not None and int(dialect.execute(conn, compiled(engine, held)).fetchone()[0]) > count:
                grown.add(name)
        stage = KeyStage(dialect, conn, "rowvault_saved")
        conditions: Conditions = {
            k.name: stage.lacking(k) for k in _stage_keys(str(path), schema, stage, grown)
        }
        if not conditions:
            return {}
        dialect.begin(conn)
        try:
            kept = delete_unreferenced(dialect, conn, schema, conditions)
        except BaseException:
            dialect.rollback(conn)
            raise
        dialect.commit(conn)
        return {name: n for name, n in kept.items() if n}
    finally:
        dialect.release(conn)


def _saved_counts(path: Path) -> dict[str, int]:
    """Rows per table in a snapshot file, from its metadata line (the file is not read)."""
    stream, _ = open_stream(path)
    with stream:
        metadata = read_metadata_line(stream.readline()) or {}
    described = metadata.get("tables") or {}
    return {name: int(d["count"]) for name, d in described.items() if isinstance(d.get("count"), int)}


def _held_back(schema: Schema, snapshot: dict[str, Any]) -> dict[str, list[tuple[str, ...]]]:
    """The foreign keys the restore of the snapshot will hold back (a self-reference, a
    cycle), per table: it writes them only where the saved value is not NULL, so they are
    emptied first in the rows it puts back, or a NULL saved there would not be put back."""
    names = [n for n in snapshot.get("tables", []) if n in schema.specs]
    held: dict[str, list[tuple[str, ...]]] = {}
    for edge in _order(schema, names).deferred:
        if edge.nullable:
            held.setdefault(edge.child, []).append(schema.specs[edge.child].foreign_keys[edge.key].columns)
    return held


def _stage_keys(
    path: str | None, schema: Schema, stage: KeyStage, only: set[str] | None = None
) -> list[Keyed]:
    """Stage the keys of the records of a file the snapshot wrote (of the tables `only`):
    the rows it saved, or the keys of the rows the undone restore inserted."""
    if not path or not Path(path).exists() or only == set():
        return []
    file = BackupFile(Path(path))
    summary = file.scan()
    keyed = []
    for name, table in summary.tables.items():
        described = summary.spec(name)
        spec = schema.specs.get(name)
        if table.count == 0 or described is None or spec is None or (only is not None and name not in only):
            continue
        key = described.key
        if not key or any(spec.column(k) is None for k in key):
            continue  # the table has changed since: its key columns are gone
        decoders = tuple(
            restore_decoder(spec.column(k).type, stage.dialect.name, described.column(k).type)  # type: ignore[union-attr]
            for k in key
        )
        keyed.append(Keyed(schema.tables[name], spec, key, name, key, decoders))
    for k in keyed:
        stage.create(k)
    if keyed:
        stage.load(file, summary.layout, keyed, lambda table, n: None)
    return keyed


def _clear(
    dialect: Dialect, conn: Any, schema: Schema, keys: dict[str, list[tuple[str, ...]]], where: Conditions
) -> None:
    """Set these foreign keys to NULL in the rows `where` picks."""
    for name, fks in keys.items():
        table = schema.tables[name]
        for columns in fks:
            stmt = sa.update(table).values({c: None for c in columns})
            conditions = [sa.or_(*(table.c[c].is_not(None) for c in columns))]
            if where[name] is not None:
                conditions.append(where[name])
            dialect.execute(conn, compiled(dialect.engine, stmt.where(*conditions)))


def delete_unreferenced(
    dialect: Dialect, conn: Any, schema: Schema, conditions: Conditions
) -> dict[str, int]:
    """Delete the rows `conditions` pick that no row refers to, children first, in the
    caller's transaction; returns how many each table keeps."""
    order = _order(schema, list(conditions))
    strict = _let_go_of_cycles(dialect, conn, schema, conditions, order)
    while True:
        deleted = 0
        for name in reversed(order.tables):
            table = schema.tables[name]
            where = [c for c in (conditions[name], *_unreferenced(schema, table)) if c is not None]
            deleted += dialect.execute(
                conn, compiled(dialect.engine, sa.delete(table).where(*where))
            ).rowcount
        if not strict or not deleted:  # a pass that deletes nothing ends it: at most one per row
            break
    kept = {}
    for name, condition in conditions.items():
        count = sa.select(sa.func.count()).select_from(schema.tables[name])
        if condition is not None:
            count = count.where(condition)
        kept[name] = int(dialect.execute(conn, compiled(dialect.engine, count)).fetchone()[0])
    return kept


def _order(schema: Schema, names: list[str]) -> Order:
    edges = []
    for name in names:
        spec = schema.specs[name]
        for i, fk in enumerate(spec.foreign_keys):
            nullable = all((c := spec.column(col)) is not None and c.nullable for col in fk.columns)
            edges.append(Edge(name, fk.ref_table, i, nullable))
    return plan_order(names, edges)


def _let_go_of_cycles(
    dialect: Dialect, conn: Any, schema: Schema, conditions: Conditions, order: Order
) -> bool:
    """Empty the nullable foreign keys that close a cycle, in the rows to delete; True when
    a cycle is held by NOT NULL keys, which only passes of leaf rows can undo."""
    held: dict[str, list[tuple[str, ...]]] = {}
    for edge in order.deferred:
        if edge.nullable:
            held.setdefault(edge.child, []).append(schema.specs[edge.child].foreign_keys[edge.key].columns)
    _clear(dialect, conn, schema, held, conditions)
    return any(not edge.nullable for edge in order.deferred)


def _unreferenced(schema: Schema, table: sa.Table) -> list[Any]:
    """Conditions on `table`'s rows: no row of any table refers to it."""
    refs = []
    for other in schema.tables.values():
        for fk in other.foreign_key_constraints:
            if fk.referred_table.name != table.name:
                continue
            child = other.alias("rowvault_child")  # an alias: the table may refer to itself
            refs.append(
                ~sa.exists().where(*(child.c[e.parent.name] == table.c[e.column.name] for e in fk.elements))
            )
    return refs
