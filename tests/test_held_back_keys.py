"""Foreign keys held back for cycles are filled in once every parent is written, on every
engine: hundreds of them at once (MariaDB writes those set-based, through a temporary table),
one pointing at a parent the file lacks (a record error naming the row, which is kept with
the key empty), and a second restore of the same file changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import rowvault

ROWS = 500
MISSING_PARENT = 7


def source_db(url: str) -> None:
    """`nodes`, each pointing at the next one (a parent written after its child: held back),
    and a cycle between `teams` and `people`."""
    metadata = sa.MetaData()
    sa.Table(
        "nodes",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_id", sa.Integer, sa.ForeignKey("nodes.id")),
        sa.Column("label", sa.String(20)),
    )
    sa.Table(
        "teams",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("lead_id", sa.Integer, sa.ForeignKey("people.id", use_alter=True)),
    )
    sa.Table(
        "people",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False),
    )
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(metadata.tables["teams"].insert(), [{"id": i, "lead_id": None} for i in range(ROWS)])
            conn.execute(metadata.tables["people"].insert(), [{"id": i, "team_id": i} for i in range(ROWS)])
            conn.execute(metadata.tables["teams"].update().values(lead_id=metadata.tables["teams"].c.id))
            conn.execute(
                metadata.tables["nodes"].insert(),
                [{"id": i, "next_id": None, "label": f"n{i}"} for i in range(ROWS)],
            )
            nodes = metadata.tables["nodes"]
            conn.execute(nodes.update().where(nodes.c.id < ROWS - 1).values(next_id=nodes.c.id + 1))
    finally:
        engine.dispose()


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


@pytest.fixture
def backup_file(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    source_db(url)
    path = tmp_path / "cycles.json"
    rowvault.backup(url, path)
    # one child points at a node the file lacks
    text = path.read_text().replace(
        f'"id":{MISSING_PARENT},"next_id":{MISSING_PARENT + 1}', f'"id":{MISSING_PARENT},"next_id":9999'
    )
    assert "9999" in text
    path.write_text(text)
    return path


def test_held_back_keys_are_filled_in_and_a_missing_parent_is_named(
    make_db: Callable[[str], str], engine_kind: str, backup_file: Path
) -> None:
    url = make_db(engine_kind)
    result = rowvault.restore(url, backup_file)

    nodes = dict(rows(url, "SELECT id, next_id FROM nodes"))
    want = {i: (i + 1 if i < ROWS - 1 else None) for i in range(ROWS)}
    want[MISSING_PARENT] = None
    assert nodes == want
    assert dict(rows(url, "SELECT id, lead_id FROM teams")) == {i: i for i in range(ROWS)}
    [message] = result.errors
    assert message.startswith(f"nodes:{MISSING_PARENT} - ") and "next_id empty" in message, message

    again = rowvault.restore(url, backup_file)
    assert again.tables["teams"].unchanged == again.tables["people"].unchanged == ROWS
    assert dict(rows(url, "SELECT id, next_id FROM nodes")) == want


def test_a_chain_that_loses_a_link_loses_the_rows_below_it_and_leaves_no_orphan(
    make_db: Callable[[str], str], engine_kind: str, tmp_path: Path
) -> None:
    """A NOT NULL reference to the table itself: a row cannot be kept with it empty, so the
    row whose parent is missing goes, and so do the rows that hung from it, each named."""
    source = f"sqlite:///{tmp_path / 'chain.db'}"
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE links (id INTEGER PRIMARY KEY, up_id INTEGER NOT NULL REFERENCES links (id))"
        )
        conn.exec_driver_sql("INSERT INTO links VALUES (0, 0)")
        for i in range(1, 100):
            conn.exec_driver_sql(f"INSERT INTO links VALUES ({i}, {i - 1})")
    engine.dispose()
    path = tmp_path / "chain.json"
    rowvault.backup(source, path)
    path.write_text(path.read_text().replace('"id":40,"up_id":39', '"id":40,"up_id":9999'))
    url = make_db(engine_kind)

    result = rowvault.restore(url, path)

    assert sorted(i for (i,) in rows(url, "SELECT id FROM links")) == list(range(40))
    assert len(result.errors) == 60
    assert result.errors[0].startswith("links:40 - ")
    orphans = "SELECT count(*) FROM links c WHERE NOT EXISTS (SELECT 1 FROM links p WHERE p.id = c.up_id)"
    assert rows(url, orphans) == [(0,)]
