"""Table and column names are data: `%` (which a format paramstyle escapes), quotes, backticks,
`;`, `--`, spaces and unicode come back exactly, through backup, a restore into a new database
of each engine, a second restore into the full one and a restore in `replace` mode.

(A backtick only in a table name: SQLAlchemy's MySQL reflection leaves a column name's
backtick doubled, as SHOW CREATE TABLE escapes it.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import rowvault
from rowvault.jobs import new_runner
from rowvault.settings import load_settings

from ..backupfiles import read_backup, write_backup
from ..conftest import ENGINES
from ..dbdump import dump

PARENTS = "pct%s"
CHILDREN = '100% "kids"; --'
LOG = "a%b `log`"
ROWS = 80  # past the LOAD DATA path's smallest batch on MariaDB


def build_source(url: str) -> None:
    metadata = sa.MetaData()
    parents = sa.Table(
        PARENTS,
        metadata,
        sa.Column("id%", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("a%b", sa.String(40), nullable=False),
        sa.Column("%(x)s", sa.String(40)),
        sa.Column('say "hi"; -- now', sa.String(40)),
        sa.UniqueConstraint("a%b", name="uq a%b"),
        sa.Index("ix %(x)s", "%(x)s"),
    )
    children = sa.Table(
        CHILDREN,
        metadata,
        sa.Column("100%", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("pct%s id", sa.Integer, sa.ForeignKey(parents.c["id%"], name="fk pct%s"), nullable=False),
        sa.Column("ünï cödé %%", sa.String(40)),
    )
    log = sa.Table(  # no key: rows are matched on all their columns
        LOG,
        metadata,
        sa.Column("what%", sa.String(40)),
        sa.Column("n %(y)s", sa.Integer),
    )
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            parents.insert(),
            [
                {"id%": i, "a%b": f"a%b {i}", "%(x)s": f"%(x)s {i % 7}", 'say "hi"; -- now': "100%"}
                for i in range(1, ROWS + 1)
            ],
        )
        conn.execute(
            children.insert(),
            [{"100%": i, "pct%s id": i % ROWS + 1, "ünï cödé %%": f"{i}%"} for i in range(ROWS)],
        )
        conn.execute(log.insert(), [{"what%": f"w%s {i}", "n %(y)s": i} for i in range(ROWS)])
    engine.dispose()


def names(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {t: [c["name"] for c in inspector.get_columns(t)] for t in sorted(inspector.get_table_names())}
    finally:
        engine.dispose()


def other(kind: str) -> str:
    return ENGINES[(ENGINES.index(kind) + 1) % len(ENGINES)]


@pytest.mark.parametrize("kind", ENGINES)
def test_names_with_percent_signs_and_quotes_survive_every_restore(
    kind: str, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    source = make_db(kind)
    build_source(source)
    backup = tmp_path / "names.json"
    assert rowvault.backup(source, backup).total == 3 * ROWS

    for target_kind in (kind, other(kind)):
        target = make_db(target_kind)
        portable = target_kind != kind

        first = rowvault.restore(target, backup)
        assert first.success, first.errors[:5]
        assert names(target) == names(source)
        assert dump(target, portable=portable) == dump(source, portable=portable)

        again = rowvault.restore(target, backup)
        assert again.success, again.errors[:5]
        unchanged = {name: t.unchanged for name, t in again.tables.items()}
        assert unchanged == {PARENTS: ROWS, CHILDREN: ROWS, LOG: ROWS}

        replaced = rowvault.restore(target, backup, mode="replace", confirm_replace=True)
        assert replaced.success, replaced.errors[:5]
        assert names(target) == names(source)
        assert dump(target, portable=portable) == dump(source, portable=portable)


def test_a_restored_table_keeps_its_keys_and_indexes(make_db: Callable[[str], str], tmp_path: Path) -> None:
    source, target = make_db("sqlite"), make_db("postgresql")
    build_source(source)
    rowvault.backup(source, tmp_path / "names.json")

    assert rowvault.restore(target, tmp_path / "names.json").success
    engine = sa.create_engine(target)
    try:
        inspector = sa.inspect(engine)
        assert [fk["constrained_columns"] for fk in inspector.get_foreign_keys(CHILDREN)] == [["pct%s id"]]
        assert [u["column_names"] for u in inspector.get_unique_constraints(PARENTS)] == [["a%b"]]
        assert [ix["column_names"] for ix in inspector.get_indexes(PARENTS) if not ix["unique"]] == [
            ["%(x)s"]
        ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ENGINES)
def test_a_restore_with_a_snapshot_is_undone_whatever_the_names(
    kind: str, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    target = make_db(kind)
    build_source(target)
    before = dump(target)
    rowvault.backup(target, tmp_path / "now.json")
    metadata, tables = read_backup(tmp_path / "now.json")
    for row in tables[PARENTS][:10]:
        row['say "hi"; -- now'] = "changed 50%"
    tables[LOG].append({"what%": "new %s", "n %(y)s": -1})
    changed = write_backup(tmp_path / "changed.json", metadata, tables)
    runner = new_runner(load_settings(DATABASE_URL=target))
    try:
        job = runner.run(runner.create_restore(changed, {"snapshot": True}).id)
        assert job.status == "completed", job.error
        assert dump(target) != before
        undo = runner.run(runner.create_undo(job.id).id)
    finally:
        runner.close()
        runner.store.close()

    assert undo.status == "completed", undo.error
    assert dump(target) == before
