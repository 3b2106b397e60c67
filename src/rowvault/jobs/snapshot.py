"""The safety snapshot, and undoing a restore with it.

Before a restore writes, its job can back up the tables it is about to write into (whole
tables: the rows it updates and the rows it leaves, so the snapshot is exactly what was
there). Undo is then a restore of the snapshot in `replace` mode - each table back to what
it held - after emptying the tables the restore itself created. The snapshot holds only the
tables the restore wrote into, while other tables may refer to their rows: replace keeps
those rows and puts the snapshot's values back in place, so undo works for a backup of a
few tables too (a row the undone restore added that another table has come to refer to
since is kept, with a warning).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..backup import backup
from ..options import BackupOptions, RestoreOptions
from ..ordering import Edge, plan_order
from ..progress import ProgressCallback, null_progress
from ..reader import FileSummary
from ..restore import validate
from ..schema import reflect

log = logging.getLogger("rowvault.jobs")


def take_snapshot(
    engine: sa.Engine,
    source: Path,
    summary: FileSummary | None,
    options: RestoreOptions,
    dest: Path,
    progress: ProgressCallback = null_progress,
) -> dict[str, Any]:
    """Back up the existing tables the restore of `source` will write into; `progress` sees
    the backup's progress record (rows saved of the tables' rows)."""
    check = RestoreOptions(mode=options.mode, dry_run=True, skip_unknown=options.skip_unknown)
    plan = validate(engine, source, options=check, summary=summary)
    tables = [tp.name for tp in plan.tables if not tp.create]
    dest.parent.mkdir(parents=True, exist_ok=True)
    if tables:
        written = backup(engine, dest, options=BackupOptions(tables=tables), progress=progress)
        log.info("[restore] safety snapshot of %d rows in %d tables: %s", written.total, len(tables), dest)
    return {"path": str(dest), "tables": tables, "created": [tp.name for tp in plan.tables if tp.create]}


def empty_tables(engine: sa.Engine, names: list[str]) -> None:
    """Delete every row of these tables, children before parents, in one transaction."""
    if not names:
        return
    with engine.begin() as conn:
        schema = reflect(conn)
        present = [n for n in names if n in schema.specs]
        edges = [
            Edge(name, fk.ref_table, i, True)
            for name in present
            for i, fk in enumerate(schema.specs[name].foreign_keys)
        ]
        for name in reversed(plan_order(present, edges).tables):
            conn.execute(schema.metadata.tables[name].delete())
    log.info("[restore] emptied the tables the undone restore created: %s", ", ".join(names))
