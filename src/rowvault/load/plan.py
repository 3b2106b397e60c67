"""Fit a checked backup file to a reflected target: which table goes where, in which order,
with which columns, keys, decoders and deferred foreign keys - or the list of reasons why
it cannot be restored, before anything is written.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from ..codec import ColumnType, Decoder, restore_decoder
from ..dialects import Target
from ..file.descriptions import description_problems
from ..file.format import REJECT_REASON_KEY
from ..file.reader import FileSummary
from ..options import RestoreOptions
from ..schema import ColumnSpec, ForeignKeySpec, Schema, TableSpec
from .matching import match_names, normalize
from .ordering import Edge, plan_order
from .pending import PENDING_TABLE

# Target kinds that cannot hold values of these source kinds.
_INCOMPATIBLE: dict[str, frozenset[str]] = {
    "integer": frozenset({"json", "bytes", "date", "datetime", "time", "uuid", "array"}),
    "float": frozenset({"json", "bytes", "date", "datetime", "time", "uuid", "array"}),
    "decimal": frozenset({"json", "bytes", "date", "datetime", "time", "uuid", "array"}),
    "boolean": frozenset({"json", "bytes", "date", "datetime", "time", "uuid", "array"}),
    "date": frozenset({"json", "bytes", "boolean", "uuid", "array", "float", "decimal"}),
    "datetime": frozenset({"json", "bytes", "boolean", "uuid", "array", "decimal"}),
    "time": frozenset({"json", "bytes", "boolean", "uuid", "array", "float", "decimal"}),
    "bytes": frozenset(
        {"json", "integer", "float", "decimal", "boolean", "date", "datetime", "time", "uuid"}
    ),
    "uuid": frozenset(
        {"json", "bytes", "integer", "float", "decimal", "boolean", "date", "datetime", "time"}
    ),
}


@dataclass(frozen=True)
class ParentCheck:
    """A foreign key to another restored table: children of its failed rows are skipped."""

    parent: str
    columns: tuple[str, ...]
    positions: tuple[int, ...]


@dataclass(frozen=True)
class Deferral:
    """Foreign-key columns written as NULL first and filled in once every table is in."""

    columns: tuple[str, ...]
    positions: tuple[int, ...]


@dataclass
class TablePlan:
    source: str
    spec: TableSpec
    target: Target
    keys: list[str]
    decoders: list[Decoder]
    required: list[int]
    count: int
    create: bool = False
    """Missing from the target: created by this restore."""
    new_table: bool = False
    """Created by this restore or by the stopped run it resumes: indexes and foreign keys
    come after the data."""
    fresh: bool = False
    ignored_keys: frozenset[str] = frozenset({REJECT_REASON_KEY})
    deferrals: list[Deferral] = field(default_factory=list)
    parent_checks: list[ParentCheck] = field(default_factory=list)
    referenced: set[tuple[str, ...]] = field(default_factory=set)
    held_by: tuple[tuple[str, ForeignKeySpec], ...] = ()
    """`replace`: foreign keys (table, key) whose rows keep some of this table's rows from
    being deleted - see `_holders`."""
    file_columns: tuple[str, ...] = ()
    """Every column the file describes for the table, in its order (empty: not described)."""
    source_types: tuple[ColumnType | None, ...] = ()
    """The file's type of each target column's values (`keys` order), where described."""

    @property
    def name(self) -> str:
        return self.target.name

    def position(self, column: str) -> int:
        return self.target.columns.index(column)

    @property
    def key_positions(self) -> list[int]:
        return self.target.key_index


@dataclass
class RestorePlan:
    tables: list[TablePlan] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped_tables: list[str] = field(default_factory=list)
    skipped_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def created(self) -> list[TablePlan]:
        return [t for t in self.tables if t.create]


def build_plan(
    summary: FileSummary,
    schema: Schema,
    dialect: str,
    options: RestoreOptions,
    *,
    created_before: Collection[str] = (),
    created_from: Mapping[str, TableSpec] | None = None,
) -> RestorePlan:
    """`created_before`: tables (target names) an earlier, stopped run created - new tables,
    planned from the description they were created from: `created_from` (see `pending`) when it
    still fits the table, else the backup's."""
    plan = RestorePlan()
    selected = _selected_tables(summary, options, plan)
    described = (summary.metadata or {}).get("tables") or {}
    if not isinstance(described, dict):
        plan.problems.append("the metadata's 'tables' is not an object of table descriptions")
        described = {}
    for name in selected:
        if name in described:
            plan.problems += description_problems(name, described[name], dialect)
    if plan.problems:
        return plan  # nothing is built from a description that is not sound
    match = match_names(selected, schema.specs)
    plan.problems += [f"table {c}" for c in match.conflicts]
    table_map = dict(match.mapping)
    creating: dict[str, TableSpec] = {}
    for name in match.unknown:
        spec = summary.spec(name)
        if spec is not None and name not in schema.specs:
            creating[name] = spec
            table_map[name] = name
        elif options.skip_unknown:
            plan.skipped_tables.append(name)
        else:
            plan.problems.append(
                f"table {name!r} does not exist in the target database and the backup does "
                "not describe its columns, so it cannot be created (restore with "
                "--skip-unknown to leave it out)"
            )
    specs = {t: schema.specs[t] for t in match.mapping.values()}
    for name, target in match.mapping.items():
        if target not in created_before:
            continue
        recorded = (created_from or {}).get(target)
        spec = _still_fits(recorded, schema.specs[target]) or summary.spec(name)
        if spec is not None:
            specs[target] = _linked_spec(replace(spec, name=target), table_map, schema, plan)
    for name, spec in creating.items():
        specs[name] = _linked_spec(spec, table_map, schema, plan)
    drafts = [
        _table_plan(name, table_map[name], specs[table_map[name]], summary, dialect, options, plan)
        for name in selected
        if name in table_map
    ]
    by_target = {d.name: d for d in drafts if d is not None}
    for draft in by_target.values():
        draft.create = draft.source in creating
        draft.new_table = draft.create or draft.name in created_before
        draft.fresh = draft.create or options.mode == "replace"
    _order_and_link(by_target, [table_map[n] for n in selected if n in table_map], plan)
    if options.mode == "replace":
        _holders(by_target, schema)
    return plan


def _holders(by_target: dict[str, TablePlan], schema: Schema) -> None:
    """`replace` empties the restored tables, but a row that a table outside the restore
    still refers to is not deleted: replace never deletes (or, by cascade, changes) rows of
    tables the backup does not hold. Such a row stays and the backup's row of the same key
    updates it in place; the rows it refers to in other replaced tables stay with it. So a
    replaced table is held by the foreign keys of the tables outside the restore and of the
    replaced tables that are held themselves (their held-back keys excepted: those columns
    are emptied first). Refusing the replace instead would also make undo impossible, since
    undo is a replace of the tables a restore wrote into, whoever else refers to them."""
    replaced = {name for name, draft in by_target.items() if not draft.create}
    held: dict[str, list[tuple[str, ForeignKeySpec]]] = {}
    grew = True
    while grew:
        grew = False
        for child, spec in schema.specs.items():
            draft = by_target.get(child)
            if draft is not None and child not in held:
                continue  # emptied whole (or created now): it keeps nothing
            cleared = {c for d in draft.deferrals for c in d.columns} if draft else set()
            for fk in spec.foreign_keys:
                if fk.ref_table in replaced and not set(fk.columns) <= cleared:
                    holders = held.setdefault(fk.ref_table, [])
                    if (child, fk) not in holders:
                        holders.append((child, fk))
                        grew = True
    for name, holders in held.items():
        by_target[name].held_by = tuple(holders)


def _still_fits(spec: TableSpec | None, reflected: TableSpec) -> TableSpec | None:
    """The recorded description, if the table still has exactly its columns."""
    if spec is None or set(spec.column_names) != set(reflected.column_names):
        return None
    return spec


def _selected_tables(summary: FileSummary, options: RestoreOptions, plan: RestorePlan) -> list[str]:
    names = [n for n in summary.tables if n != PENDING_TABLE]
    if len(names) < len(summary.tables):  # a backup taken while a restore's DDL was owed
        plan.warnings.append(f"table {PENDING_TABLE!r} is rowvault's own bookkeeping; left out")
    if options.tables is not None:
        wanted = list(options.tables)
        plan.problems += [f"table {t!r} is not in the backup" for t in wanted if t not in names]
        names = [n for n in names if n in wanted]
    plan.problems += [f"table {t!r} is not in the backup" for t in options.exclude if t not in summary.tables]
    return [n for n in names if n not in options.exclude]


def _linked_spec(spec: TableSpec, table_map: dict[str, str], schema: Schema, plan: RestorePlan) -> TableSpec:
    """A table to create, its foreign keys pointing at the tables' names in the target."""
    fks = []
    for fk in spec.foreign_keys:
        parent = table_map.get(fk.ref_table) or _find(fk.ref_table, schema.specs)
        parent_spec = schema.specs.get(parent) if parent else None
        if parent is None or (parent_spec is None and parent not in table_map.values()):
            plan.warnings.append(
                f"table {spec.name!r}: foreign key to {fk.ref_table!r} left out, "
                "that table is neither in the backup nor in the target"
            )
            continue
        ref_columns = fk.ref_columns
        if parent_spec is not None:
            cols = match_names(fk.ref_columns, parent_spec.column_names)
            if cols.unknown or cols.conflicts:
                plan.warnings.append(
                    f"table {spec.name!r}: foreign key to {parent!r} left out, its columns "
                    f"{list(fk.ref_columns)} do not match"
                )
                continue
            ref_columns = tuple(cols.mapping[c] for c in fk.ref_columns)
        fks.append(ForeignKeySpec(fk.columns, parent, ref_columns))
    return replace(spec, foreign_keys=tuple(fks), _by_name={})


def _find(name: str, specs: dict[str, TableSpec]) -> str | None:
    found = [t for t in specs if normalize(t) == normalize(name)]
    return found[0] if len(found) == 1 else None


def _table_plan(
    source: str,
    target_name: str,
    spec: TableSpec,
    summary: FileSummary,
    dialect: str,
    options: RestoreOptions,
    plan: RestorePlan,
) -> TablePlan | None:
    source_spec = summary.spec(source)
    source_cols = summary.columns(source)
    cols = match_names(source_cols, spec.column_names)
    where = f"table {source!r}" + (f" (target {target_name!r})" if target_name != source else "")
    plan.problems += [f"{where}: column {c}" for c in cols.conflicts]
    if cols.unknown:
        if options.skip_unknown:
            plan.skipped_columns[source] = list(cols.unknown)
        else:
            plan.problems += [
                f"{where}: column {c!r} does not exist in the target (restore with "
                "--skip-unknown to leave it out)"
                for c in cols.unknown
            ]
    keys = [c for c in source_cols if c in cols.mapping]
    columns = [cols.mapping[c] for c in keys]
    targets = [c for c in map(spec.column, columns) if c is not None]
    empty = summary.tables[source].count == 0  # `"auditLogs": []`: no columns to check
    for required_col in spec.columns:
        if empty or required_col.nullable or required_col.has_default or required_col.name in columns:
            continue
        plan.problems.append(
            f"{where}: the target requires column {required_col.name!r} (NOT NULL, no default) "
            "but the backup has no values for it"
        )
    decoders = []
    source_types: list[ColumnType | None] = []
    for source_key, col in zip(keys, targets, strict=True):
        src_col = source_spec.column(source_key) if source_spec else None
        src_type = src_col.type if src_col else None
        source_types.append(src_type)
        if src_type is not None and src_type.kind in _INCOMPATIBLE.get(col.type.kind, ()):
            plan.problems.append(
                f"{where}: column {source_key!r} holds {src_type.kind} values but the target "
                f"column {col.name!r} is {col.type.kind} ({col.type.sql})"
            )
        decoders.append(restore_decoder(col.type, dialect, src_type))
    key = [k for k in spec.key if k in columns] if spec.key else []
    if spec.key and len(key) != len(spec.key) and not empty:
        plan.warnings.append(
            f"{where}: the backup has no values for key column(s) "
            f"{[k for k in spec.key if k not in columns]}; rows are matched on all columns"
        )
        key = []
    # a primary key column never takes NULL: SQLite's INTEGER PRIMARY KEY would make up an id
    required = [
        i
        for i, col in enumerate(targets)
        if (not col.nullable and not col.has_default) or col.name in spec.primary_key
    ]
    table = sa.Table(target_name, sa.MetaData(), *(_sa_column(c) for c in targets))
    target = Target(table, columns, [c.type for c in targets], key)
    ignored = frozenset({REJECT_REASON_KEY, *plan.skipped_columns.get(source, ())})
    return TablePlan(
        source=source,
        spec=spec,
        target=target,
        keys=keys,
        decoders=decoders,
        required=required,
        count=summary.tables[source].count,
        ignored_keys=ignored,
        file_columns=tuple(source_spec.column_names) if source_spec else (),
        source_types=tuple(source_types),
    )


def _sa_column(col: ColumnSpec) -> sa.Column[object]:
    """A column for building statements; untyped, so no driver-side casts are rendered."""
    return sa.Column(col.name, sa.types.NullType())


def _order_and_link(by_target: dict[str, TablePlan], file_order: list[str], plan: RestorePlan) -> None:
    edges: list[Edge] = []
    for name, draft in by_target.items():
        for i, fk in enumerate(draft.spec.foreign_keys):
            if fk.ref_table not in by_target:
                continue
            cols = [draft.spec.column(c) for c in fk.columns]
            nullable = all(c is not None and c.nullable for c in cols)
            edges.append(Edge(name, fk.ref_table, i, nullable))
    seen: list[str] = []
    for t in file_order:
        if t in by_target and t not in seen:
            seen.append(t)
    order = plan_order(seen, edges)
    for name in order.tables:
        draft = by_target[name]
        deferred = {e.key for e in order.deferred_for(name)}
        for i, fk in enumerate(draft.spec.foreign_keys):
            if fk.ref_table not in by_target or any(c not in draft.target.columns for c in fk.columns):
                continue
            positions = tuple(draft.position(c) for c in fk.columns)
            parent = by_target[fk.ref_table]
            if all(c in parent.target.columns for c in fk.ref_columns):
                draft.parent_checks.append(ParentCheck(parent.source, fk.ref_columns, positions))
                parent.referenced.add(fk.ref_columns)
            if i in deferred:
                _defer(draft, fk, positions, plan)
        plan.tables.append(draft)


def _defer(draft: TablePlan, fk: ForeignKeySpec, positions: tuple[int, ...], plan: RestorePlan) -> None:
    if not draft.target.key:
        plan.warnings.append(
            f"table {draft.source!r}: rows have no key, so the foreign key to {fk.ref_table!r} "
            "cannot be filled in afterwards; rows must come parents-first in the file"
        )
        return
    if any(draft.target.columns[p] in draft.target.key for p in positions):
        return
    if any(
        (c := draft.spec.column(draft.target.columns[p])) is not None and not c.nullable for p in positions
    ):
        plan.warnings.append(
            f"table {draft.source!r}: the foreign key to {fk.ref_table!r} is part of a cycle "
            "but NOT NULL; rows whose parent comes later will fail"
        )
        return
    draft.deferrals.append(Deferral(fk.columns, positions))
    draft.target.held_back = draft.target.held_back | set(fk.columns)
