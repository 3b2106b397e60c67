"""DDL still owed to tables a restore created: kept in the target database itself.

A created table gets its secondary indexes and foreign keys only after its data (that is
what makes the load fast). A run that dies in between - killed, crashed, failed - leaves
tables that look complete and are not. So the moment a table is created, its description
(the backup's, as the table was built from it, with target names) goes into a small table
of the target, `rowvault_pending_ddl`; the entry goes once the table's indexes and foreign
keys are in, and the bookkeeping table itself once it is empty.

Why in the target and not in the job's state store: the debt belongs to the database, not
to a job. A resumed job, a plain second `restore` of the same file (CLI, library, another
machine, a state store that was wiped) all find it there, and on SQLite and PostgreSQL the
entry is written in the same transaction as the CREATE TABLE, so there is never a created
table without its entry. MariaDB/MySQL commits each CREATE TABLE on its own: there the
entries are written just before the tables (the CREATE commits them), so a crash can at most
leave an entry for a table that does not exist yet, which the next run overwrites or drops.

The bookkeeping table is never part of a restore's or a backup's tables (`PENDING_TABLE`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.schema import CreateTable, DropTable

from ..dialects import Dialect
from ..file.descriptions import description_problems
from ..schema import Schema, TableSpec

log = logging.getLogger("rowvault.restore")

PENDING_TABLE = "rowvault_pending_ddl"
"""rowvault's own bookkeeping table in a target database; never backed up or restored."""

_table = sa.Table(
    PENDING_TABLE,
    sa.MetaData(),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("description", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb"), nullable=False),
)


@dataclass
class PendingDDL:
    """The bookkeeping table of one target, as a run found it."""

    exists: bool = False
    specs: dict[str, TableSpec] = field(default_factory=dict)
    """Per table an earlier run created: the description it was created from."""


def take(conn: sa.Connection, schema: Schema, dialect: str) -> PendingDDL:
    """Read the entries and take the bookkeeping table out of `schema`, so that nothing
    matches, plans or refuses anything because of it."""
    reflected = schema.metadata.tables.get(PENDING_TABLE)
    if reflected is None:
        return PendingDDL()
    schema.metadata.remove(reflected)
    schema.specs.pop(PENDING_TABLE, None)
    found = PendingDDL(exists=True)
    for name, text in conn.execute(sa.select(_table.c.table_name, _table.c.description)):
        try:
            described = orjson.loads(text)
        except orjson.JSONDecodeError:
            described = None
        if description_problems(name, described, dialect):
            log.warning("[restore] %s: the entry for %r is unreadable; left alone", PENDING_TABLE, name)
            continue
        found.specs[str(name)] = TableSpec.from_dict(str(name), described)
    return found


def record(dialect: Dialect, conn: Any, specs: Sequence[TableSpec]) -> None:
    """Note `specs` as tables whose indexes and foreign keys are still to come, inside the
    caller's transaction (which, on MariaDB/MySQL, the next CREATE TABLE commits)."""
    create = CreateTable(_table, if_not_exists=True).compile(dialect=dialect.sa_dialect)
    dialect.execute(conn, str(create))
    _forget(dialect, conn, [spec.name for spec in specs])
    insert, order = dialect.compile(
        sa.insert(_table).values(table_name=sa.bindparam("n"), description=sa.bindparam("d"))
    )
    for spec in specs:
        values = {"n": spec.name, "d": orjson.dumps(spec.to_dict()).decode()}
        dialect.execute(conn, insert, [values[p] for p in order])


def settle(dialect: Dialect, conn: Any, names: Collection[str]) -> None:
    """These tables owe nothing any more; drop the bookkeeping table once it is empty. The
    caller knows the table exists (it found it or wrote to it)."""
    _forget(dialect, conn, list(names))
    if dialect.execute(conn, f"SELECT 1 FROM {dialect.quote(PENDING_TABLE)} LIMIT 1").fetchone() is None:
        dialect.execute(conn, str(DropTable(_table).compile(dialect=dialect.sa_dialect)))


def _forget(dialect: Dialect, conn: Any, names: list[str]) -> None:
    delete, _ = dialect.compile(sa.delete(_table).where(_table.c.table_name == sa.bindparam("n")))
    for name in names:
        dialect.execute(conn, delete, [name])
