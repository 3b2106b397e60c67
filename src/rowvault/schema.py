"""Table descriptions: reflected from a database, carried in a backup's metadata, and turned
back into `CREATE TABLE` on a target that lacks them.

`TableSpec` is the portable description (columns with portable types, primary key, unique
keys, foreign keys, secondary indexes). Reflection goes through SQLAlchemy's `MetaData.reflect`;
creation goes through SQLAlchemy's generic types, with per-dialect variants where the generic
one would lose data (MySQL `DATETIME` without fractional seconds, `BLOB` capped at 64 KB, ...).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from .codec import ColumnType, column_type
from .typenames import vetted_type


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    nullable: bool = True
    has_default: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, **self.type.to_dict(), "nullable": self.nullable}
        if self.has_default:
            data["hasDefault"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        return cls(
            name=str(data["name"]),
            type=ColumnType.from_dict(dict(data)),
            nullable=bool(data.get("nullable", True)),
            has_default=bool(data.get("hasDefault", False)),
        )


@dataclass(frozen=True)
class ForeignKeySpec:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "references": self.ref_table,
            "referredColumns": list(self.ref_columns),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ForeignKeySpec:
        return cls(tuple(data["columns"]), str(data["references"]), tuple(data["referredColumns"]))


@dataclass(frozen=True)
class IndexSpec:
    name: str | None
    columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSpec:
        return cls(data.get("name"), tuple(data["columns"]))


@dataclass(frozen=True)
class TableSpec:
    """What rowvault knows of a table, whichever side it is on."""

    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[ForeignKeySpec, ...] = ()
    indexes: tuple[IndexSpec, ...] = ()
    count: int | None = None
    _by_name: dict[str, ColumnSpec] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec | None:
        return self._by_name.get(name)

    @property
    def key(self) -> tuple[str, ...]:
        """Columns that identify a row: primary key, else first unique key, else none."""
        if self.primary_key:
            return self.primary_key
        return self.unique[0] if self.unique else ()

    def with_count(self, count: int | None) -> TableSpec:
        return replace(self, count=count, _by_name={})

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "columns": [c.to_dict() for c in self.columns],
            "primaryKey": list(self.primary_key),
            "unique": [list(u) for u in self.unique],
            "foreignKeys": [fk.to_dict() for fk in self.foreign_keys],
            "indexes": [ix.to_dict() for ix in self.indexes],
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> TableSpec:
        count = data.get("count")
        return cls(
            name=name,
            columns=tuple(ColumnSpec.from_dict(c) for c in data.get("columns") or ()),
            primary_key=tuple(data.get("primaryKey") or ()),
            unique=tuple(tuple(u) for u in data.get("unique") or ()),
            foreign_keys=tuple(ForeignKeySpec.from_dict(f) for f in data.get("foreignKeys") or ()),
            indexes=tuple(IndexSpec.from_dict(i) for i in data.get("indexes") or ()),
            count=int(count) if isinstance(count, int) else None,
        )


# -- reflection ----------------------------------------------------------------------------


@dataclass
class Schema:
    """A reflected database: SQLAlchemy tables for building SQL, specs for everything else."""

    metadata: sa.MetaData
    specs: dict[str, TableSpec]

    @property
    def tables(self) -> dict[str, sa.Table]:
        return dict(self.metadata.tables)


def reflect(conn: Connection, json_columns: Iterable[tuple[str, str]] = ()) -> Schema:
    """Reflect every table of the connection's default schema."""
    metadata = sa.MetaData()
    metadata.reflect(bind=conn)
    json_set = set(json_columns)
    specs = {str(name): spec_of(table, conn.dialect, json_set) for name, table in metadata.tables.items()}
    return Schema(metadata, specs)


def spec_of(
    table: sa.Table, dialect: sa.Dialect, json_columns: Set[tuple[str, str]] = frozenset()
) -> TableSpec:
    columns = []
    for col in table.columns:
        ctype = column_type(col.type, dialect)
        if (table.name, col.name) in json_columns:
            ctype = ColumnType("json", ctype.sql)
        has_default = col.server_default is not None or bool(col.autoincrement is True)
        columns.append(ColumnSpec(str(col.name), ctype, bool(col.nullable), has_default))
    unique: list[tuple[str, ...]] = []
    for cons in table.constraints:
        if isinstance(cons, sa.UniqueConstraint) and not isinstance(cons, sa.PrimaryKeyConstraint):
            unique.append(tuple(str(c.name) for c in cons.columns))
    indexes = []
    for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
        cols = tuple(str(c.name) for c in index.columns)
        if not cols or len(cols) != len(index.expressions):
            continue  # expression indexes are left to the application's migrations
        if index.unique:
            if cols not in unique:
                unique.append(cols)
        else:
            indexes.append(IndexSpec(str(index.name) if index.name else None, cols))
    fks = tuple(
        ForeignKeySpec(
            tuple(str(e.parent.name) for e in fk.elements),
            str(fk.referred_table.name),
            tuple(str(e.column.name) for e in fk.elements),
        )
        for fk in sorted(table.foreign_key_constraints, key=lambda f: str(f.name or ""))
    )
    return TableSpec(
        name=str(table.name),
        columns=tuple(columns),
        primary_key=tuple(str(c.name) for c in table.primary_key.columns),
        unique=tuple(unique),
        foreign_keys=fks,
        indexes=tuple(indexes),
    )


# -- creation ------------------------------------------------------------------------------


class VettedType(sa.types.UserDefinedType[Any]):
    """A source type copied within one engine, spelled by `typenames` from its closed set of
    known types (never the backup's own text)."""

    cache_ok = True

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def get_col_spec(self, **kw: Any) -> str:
        return self.sql


def _mysql_text(indexed: bool, length: int | None) -> TypeEngine[Any]:
    if length and length <= 16383:
        return mysql.VARCHAR(length)
    return mysql.VARCHAR(255) if indexed else mysql.LONGTEXT()


_INTEGER_BITS = (("TINY", 8), ("SMALL", 16), ("MEDIUM", 24), ("BIG", 64))
_MYSQL_UNSIGNED = {
    8: mysql.TINYINT,
    16: mysql.SMALLINT,
    24: mysql.MEDIUMINT,
    32: mysql.INTEGER,
    64: mysql.BIGINT,
}


def _integer_bits(sql: str, affinity: bool) -> int:
    """The width of the source's integers; SQLite's are always 64-bit, whatever the name."""
    if affinity:
        return 64
    return next((bits for word, bits in _INTEGER_BITS if word in sql), 32)


def _integer_type(ctype: ColumnType, dialect: str, indexed: bool) -> Any:
    """An integer type that holds every value of the source column (MySQL's unsigned ones too)."""
    sql = ctype.sql.upper()
    bits = _integer_bits(sql, ctype.affinity)
    if "UNSIGNED" in sql:
        if dialect == "mysql":
            return _MYSQL_UNSIGNED[bits](unsigned=True)
        if bits == 64 and dialect == "postgresql" and not indexed:
            return sa.Numeric(20, 0)  # keys stay BIGINT: serial ids, and foreign keys match them
        bits = min(64, bits * 2)
    if bits == 64:
        return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.SmallInteger() if bits <= 16 else sa.Integer()


def sa_type(ctype: ColumnType, dialect: str, *, indexed: bool, source_dialect: str | None) -> Any:
    """The SQLAlchemy type to create a column of `ctype` on `dialect` without losing data.

    A SQLite column's declared type is only an affinity: its integers are 64-bit and its text,
    blobs and decimals unbounded, whatever the declaration says, so they are created so."""
    kind = ctype.kind
    sql = ctype.sql.upper()
    loose = ctype.affinity or source_dialect == "sqlite"
    if dialect == source_dialect and kind not in ("integer", "json"):
        # Integers keep SQLAlchemy's types (they carry SERIAL / AUTO_INCREMENT / rowid
        # aliasing), JSON keeps them for MariaDB's JSON check.
        same = vetted_type(ctype.sql, dialect)
        if same is not None:
            return VettedType(same)
    if kind == "integer":
        return _integer_type(replace(ctype, affinity=loose), dialect, indexed)
    if kind == "float":
        return sa.Double()
    if kind == "decimal":
        if dialect == "mysql" and (ctype.precision is None or loose):
            return mysql.DECIMAL(precision=65, scale=30)
        if (
            dialect == "mysql" and ctype.precision is not None and ctype.precision > 65
        ):  # its widest; a value past it is a record error
            scale = min(ctype.scale or 0, 30)
            return mysql.DECIMAL(precision=65, scale=scale)
        return sa.Numeric() if loose else sa.Numeric(ctype.precision, ctype.scale)
    if kind == "string":
        length = None if loose else ctype.length
        if dialect == "mysql":
            return _mysql_text(indexed, length)
        return sa.String(length) if length else sa.Text()
    if kind == "boolean":
        return sa.Boolean()
    if kind == "date":
        return sa.Date()
    if kind == "time":
        return mysql.TIME(fsp=6) if dialect == "mysql" else sa.Time(timezone=ctype.timezone)
    if kind == "datetime":
        if dialect == "mysql":
            return mysql.DATETIME(fsp=6)
        return sa.DateTime(timezone=ctype.timezone)
    if kind == "bytes":
        if dialect == "mysql":
            return mysql.VARBINARY(255) if indexed else mysql.LONGBLOB()
        return sa.LargeBinary()
    if kind == "uuid":
        return sa.Uuid(as_uuid=False) if dialect == "postgresql" else sa.String(36)
    if kind == "json":
        if dialect == "postgresql" and "JSONB" in sql:
            return postgresql.JSONB()
        return sa.JSON()
    if kind == "interval":
        return sa.String(64)
    if kind == "array":
        return sa.JSON()
    return _mysql_text(indexed, None) if dialect == "mysql" else sa.Text()


def build_table(
    spec: TableSpec, metadata: sa.MetaData, dialect: str, *, source_dialect: str | None
) -> sa.Table:
    """A SQLAlchemy table for `spec`, without secondary indexes (they come after the data) and
    without foreign keys (`link_foreign_keys` adds them once every table is built)."""
    keyed = {c for cols in (spec.primary_key, *spec.unique) for c in cols}
    keyed.update(c for fk in spec.foreign_keys for c in fk.columns)
    keyed.update(c for ix in spec.indexes for c in ix.columns)
    single_int_pk = len(spec.primary_key) == 1 and (
        spec.column(spec.primary_key[0]) is not None
        and spec.column(spec.primary_key[0]).type.kind == "integer"  # type: ignore[union-attr]
    )
    columns = [
        sa.Column(
            c.name,
            sa_type(c.type, dialect, indexed=c.name in keyed, source_dialect=source_dialect),
            nullable=c.nullable and c.name not in spec.primary_key,
            primary_key=c.name in spec.primary_key,
            autoincrement=single_int_pk if c.name in spec.primary_key else False,
        )
        for c in spec.columns
    ]
    constraints: list[sa.Constraint] = [
        sa.UniqueConstraint(*cols, name=_name("uq", spec.name, cols)) for cols in spec.unique
    ]
    return sa.Table(spec.name, metadata, *columns, *constraints)


def link_foreign_keys(spec: TableSpec, table: sa.Table, tables: Mapping[str, sa.Table]) -> None:
    """Give `table` the foreign keys of `spec` whose parent is among `tables`."""
    for fk in spec.foreign_keys:
        if fk.ref_table in tables:
            table.append_constraint(foreign_key(table.name, fk, tables[fk.ref_table]))


def foreign_key(table: str, fk: ForeignKeySpec, parent: sa.Table) -> sa.ForeignKeyConstraint:
    """Built from the parent's column objects: a name is never parsed as `schema.table.column`."""
    return sa.ForeignKeyConstraint(
        list(fk.columns),
        [parent.c[c] for c in fk.ref_columns],
        name=_name("fk", table, fk.columns),
    )


def index(table: sa.Table, ix: IndexSpec) -> sa.Index:
    return sa.Index(ix.name or _name("ix", table.name, ix.columns), *(table.c[c] for c in ix.columns))


def _name(prefix: str, table: str, columns: Iterable[str]) -> str:
    """Constraint names that stay within PostgreSQL's and MySQL's 63/64 character limits."""
    name = f"{prefix}_{table}_{'_'.join(columns)}"
    if len(name) <= 60:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:51]}_{digest}"
