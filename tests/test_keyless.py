"""A table without a key restores to the same multiset of rows as the backup, on every engine:
missing copies of a row go in, copies the table already holds count, a second restore inserts
nothing. And a record naming a key twice is a record error, not a silent last-wins."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

import rowvault
from rowvault.file.rejects import RAW_KEY
from rowvault.file.writer import BackupWriter

from .backupfiles import read_backup

metadata = sa.MetaData()
readings = sa.Table(  # no primary key, no unique key
    "readings",
    metadata,
    sa.Column("sensor", sa.String(20), nullable=False),
    sa.Column("value", sa.Integer),
    sa.Column("note", sa.String(50)),
)
A, B, C, D, E = ("a", 1, None), ("b", 2, "x"), ("c", None, None), ("d", 4, "z"), ("e", 5, "y")
BACKED_UP = [A, B, C, A, E, A, C]  # copies spread over batches of two


def rows(url: str) -> Counter[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = Counter(tuple(r) for r in conn.execute(sa.select(readings)))
    engine.dispose()
    return found


def fill(url: str, values: list[tuple[Any, ...]]) -> None:
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        if values:
            conn.execute(
                readings.insert(), [dict(zip(("sensor", "value", "note"), v, strict=True)) for v in values]
            )
    engine.dispose()


@pytest.fixture
def backup(make_db: Callable[[str], str], engine_kind: str, tmp_path: Path) -> Path:
    source = make_db(engine_kind)
    fill(source, BACKED_UP)
    path = tmp_path / "readings.json.gz"
    rowvault.backup(source, path)
    return path


def test_missing_copies_go_in_and_extra_copies_stay(
    make_db: Callable[[str], str], engine_kind: str, backup: Path
) -> None:
    target = make_db(engine_kind)
    fill(target, [A, C, C, C, C, D])  # A: fewer copies than the backup, C: more, D: not in it
    result = rowvault.restore(target, backup, batch_size=2)
    assert rows(target) == Counter({A: 3, B: 1, C: 4, D: 1, E: 1})
    table = result.tables["readings"]
    assert (table.created, table.unchanged, table.failed) == (4, 3, 0)

    again = rowvault.restore(target, backup, batch_size=2)  # the same file: nothing to add
    assert rows(target) == Counter({A: 3, B: 1, C: 4, D: 1, E: 1})
    assert (again.tables["readings"].created, again.tables["readings"].unchanged) == (0, 7)


def test_a_new_table_gets_every_copy_and_a_second_restore_adds_none(
    make_db: Callable[[str], str], engine_kind: str, backup: Path
) -> None:
    target = make_db(engine_kind)
    rowvault.restore(target, backup, batch_size=3)  # creates the table: plain inserts
    assert rows(target) == Counter(BACKED_UP)
    again = rowvault.restore(target, backup, batch_size=3)
    assert rows(target) == Counter(BACKED_UP)
    assert again.tables["readings"].created == 0


def test_a_resumed_restore_counts_what_the_stopped_run_wrote(
    make_db: Callable[[str], str], engine_kind: str, backup: Path
) -> None:
    target = make_db(engine_kind)
    fill(target, [A])
    looks, done = [0], {}

    def stop_after_two_batches() -> bool:  # a writer thread may have written the second unsaved
        looks[0] += 1
        return looks[0] > 2

    with pytest.raises(rowvault.RestoreAborted):
        rowvault.restore(
            target,
            backup,
            batch_size=2,
            should_stop=stop_after_two_batches,
            on_checkpoint=lambda table, n: done.update({table: n}),
        )
    assert 0 < done["readings"] < len(BACKED_UP)
    rowvault.restore(target, backup, batch_size=2, resume=done)
    assert rows(target) == Counter(BACKED_UP)


def write_lines(path: Path, table: str, lines: list[bytes]) -> Path:
    writer = BackupWriter(path)
    writer.write_metadata({"format": "rowvault", "version": 1, "tables": {table: {"count": len(lines)}}})
    writer.begin_table(table)
    writer.write_records(lines)
    writer.end_table()
    writer.close()
    return path


def test_a_key_named_twice_is_a_record_error(make_db: Callable[[str], str], tmp_path: Path) -> None:
    target = make_db("sqlite")
    people = sa.Table(
        "people", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text)
    )
    engine = sa.create_engine(target)
    people.metadata.create_all(engine)
    lines = [
        b'{"id":1,"name":"a"}',
        b'{"id":2,"name":"b","id":3}',
        b'{"name":"c","id":4}',
        b'{"id" : 5, "name" : "d", "id" : 6}',  # spaced like another writer's output
        b'{"id":7,"name":"{\\"id\\":1,\\"id\\":2}"}',  # "id" twice inside a string: fine
        b'{"id":8,"name":"e","name":"f"}',
    ]
    source = write_lines(tmp_path / "people.json", "people", lines)
    result = rowvault.restore(target, source)
    assert result.errors == [
        "people:#2 - duplicate key 'id' in the record",
        "people:#4 - duplicate key 'id' in the record",
        "people:#6 - duplicate key 'name' in the record",
    ]
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(people.c.id))) == [(1,), (4,), (7,)]
    engine.dispose()
    assert result.rejects_path is not None
    _, rejected = read_backup(result.rejects_path)
    assert [r[RAW_KEY] for r in rejected["people"]] == [
        lines[1].decode(),
        lines[3].decode(),
        lines[5].decode(),
    ]


def test_the_duplicate_key_check_leaves_nested_objects_alone(
    make_db: Callable[[str], str], tmp_path: Path
) -> None:
    target = make_db("sqlite")
    docs = sa.Table(
        "docs", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.JSON)
    )
    engine = sa.create_engine(target)
    docs.metadata.create_all(engine)
    engine.dispose()
    bodies = [{"id": 1, "tags": ["x"], "inner": {"id": 2}}, {"a": 'say "b": c'}, []]
    lines = [orjson.dumps({"id": i, "body": body}) for i, body in enumerate(bodies)]
    result = rowvault.restore(target, write_lines(tmp_path / "docs.json", "docs", lines))
    assert result.errors == []
    assert result.tables["docs"].created == 3
