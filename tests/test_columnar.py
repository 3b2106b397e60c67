"""The columnar path and the row path give the same database and the same result.

Every file is restored twice into identical targets - once as rowvault does by default
(columnar where it can), once with `columnar=False` (every record through the row path) -
and the two databases are compared value for value with each value's exact stored form
(SQLite's storage class, PostgreSQL's text output), the results field by field, and the
rejects files line by line. The files: the whole hostile corpus of issue 6 into a populated
target and into an empty one, and the demo data into all three engines, empty and again.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

import rowvault
from rowvault import BackupFileError, ValidationError
from rowvault.demo import build_demo
from rowvault.dialects import arrow_sqlite
from rowvault.load.columnar import batches

from .corpus import make_corpus
from .corpus.make_corpus import Case

CASES = [c for c in make_corpus.cases() if not c.big]
PARTIAL = [c for c in CASES if c.outcome == "partial"]


# -- what is compared -----------------------------------------------------------------------


def exact_rows(url: str) -> dict[str, list[str]]:
    """Every table's rows as the engine itself spells them, sorted: SQLite's `quote()` (which
    tells 1 from 1.0 from '1' from X'31'), PostgreSQL's row text, MariaDB's values as text
    with their type's name."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sorted(sa.inspect(conn).get_table_names())
            return {n: _rows(conn, n) for n in names if not n.startswith("rowvault_")}
    finally:
        engine.dispose()


def _rows(conn: sa.Connection, table: str) -> list[str]:
    dialect = conn.dialect.name
    q = conn.dialect.identifier_preparer.quote
    if dialect == "postgresql":
        sql = f"SELECT t::text FROM {q(table)} t"
    else:
        columns = [c["name"] for c in sa.inspect(conn).get_columns(table)]
        if dialect == "sqlite":
            parts = " || '|' || ".join(f"quote({q(c)})" for c in columns)
        else:
            parts = ", '|', ".join(f"COALESCE(HEX(CAST({q(c)} AS BINARY)), 'NULL')" for c in columns)
            parts = f"CONCAT({parts})"
        sql = f"SELECT {parts} FROM {q(table)}"
    return sorted(str(row[0]) for row in conn.exec_driver_sql(sql))


def comparable(result: Any) -> dict[str, Any]:
    """A result as both paths must agree on it (not its time, id or rejects file's name)."""
    data = result.to_dict()
    for key in ("seconds", "progressId", "rejectsFile", "retries", "database"):
        data.pop(key, None)
    return data


def rejected(result: Any) -> list[bytes]:
    path = result.rejects_path
    return Path(path).read_bytes().splitlines()[1:] if path else []  # line 1: metadata


def both_ways(make_target: Any, backup: Path, tmp_path: Path, **options: Any) -> tuple[Any, Any]:
    """Restore `backup` into two identical targets, by default and by the row path only;
    assert both end the same, and return (columnar result, row result)."""
    outcomes = []
    for columnar in (True, False):
        url = make_target(columnar)
        rejects = tmp_path / f"rejects-{columnar}.json"
        try:
            result: Any = rowvault.restore(
                url, backup, columnar=columnar, rejects_path=rejects, confirm_replace=True, **options
            )
        except (BackupFileError, ValidationError) as exc:
            result = exc
        outcomes.append((url, result))
    (url_c, columnar_result), (url_r, row_result) = outcomes
    if isinstance(row_result, Exception):
        assert type(columnar_result) is type(row_result) and str(columnar_result) == str(row_result)
    else:
        assert not isinstance(columnar_result, Exception), columnar_result
        assert comparable(columnar_result) == comparable(row_result)
        assert rejected(columnar_result) == rejected(row_result)
    assert exact_rows(url_c) == exact_rows(url_r)
    return columnar_result, row_result


# -- the corpus -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    make_corpus.build(folder)
    return folder


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "target.db"
    make_corpus.seed(f"sqlite:///{path}")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_every_corpus_file_restores_the_same_by_either_path(
    case: Case, corpus: Path, template: Path, tmp_path: Path
) -> None:
    def populated(columnar: bool) -> str:
        path = tmp_path / f"populated-{columnar}.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"

    both_ways(populated, corpus / case.file, tmp_path)


@pytest.mark.parametrize("case", PARTIAL, ids=[c.file for c in PARTIAL])
def test_every_partial_corpus_file_restores_the_same_into_an_empty_database(
    case: Case, corpus: Path, tmp_path: Path
) -> None:
    both_ways(lambda columnar: f"sqlite:///{tmp_path / f'empty-{columnar}.db'}", corpus / case.file, tmp_path)


# -- the demo data, every engine --------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    build_demo(folder / "demo.db", 3000)
    backup = folder / "demo.json.gz"
    rowvault.backup(folder / "demo.db", backup)
    return backup


def test_the_demo_data_restores_the_same_by_either_path_empty_and_again(
    engine_kind: str, make_db: Any, demo_backup: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    urls = {True: make_db(engine_kind), False: make_db(engine_kind)}
    with caplog.at_level(logging.INFO, logger="rowvault.restore"):
        first, _ = both_ways(urls.__getitem__, demo_backup, tmp_path)
    assert sum(t.created for t in first.tables.values()) == first.total
    columnar = [r.getMessage() for r in caplog.records if "batches as columns" in r.getMessage()]
    assert any(" 0 batches as columns" not in m for m in columnar), columnar  # the path was taken
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rowvault.restore"):
        again, _ = both_ways(urls.__getitem__, demo_backup, tmp_path)
    assert sum(t.unchanged for t in again.tables.values()) == again.total
    merged = [r.getMessage() for r in caplog.records if "batches as columns" in r.getMessage()]
    assert any(" 0 batches as columns" not in m for m in merged), merged  # populated: a stage + merge
    skipped, _ = both_ways(urls.__getitem__, demo_backup, tmp_path, mode="skip")
    assert sum(t.unchanged for t in skipped.tables.values()) == skipped.total


def test_changed_rows_are_counted_the_same_by_either_path(
    engine_kind: str, make_db: Any, demo_backup: Path, tmp_path: Path
) -> None:
    urls = {True: make_db(engine_kind), False: make_db(engine_kind)}
    both_ways(urls.__getitem__, demo_backup, tmp_path)
    for url in urls.values():
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE users SET name = 'changed' WHERE id <= 10")
            conn.exec_driver_sql("DELETE FROM audit_logs WHERE id <= 25")
        engine.dispose()
    again, _ = both_ways(urls.__getitem__, demo_backup, tmp_path)
    assert again.tables["users"].updated == 10
    assert again.tables["audit_logs"].created == 25


# -- two SQLite libraries in one process ------------------------------------------------------


def test_the_restore_never_holds_sqlite3_and_adbc_open_on_the_file_at_once(
    demo_backup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADBC's driver carries its own SQLite library: while it writes, the restore's sqlite3
    connection is closed and SQLAlchemy's pool is empty; while the row path writes (a batch
    the columnar path declined), ADBC's connection is closed."""
    seen = {"adbc": 0, "rows": 0}
    write, row_path = arrow_sqlite.SQLiteArrowWriter.write, arrow_sqlite.SQLiteArrowWriter.row_path

    def checked_write(self: Any, conn: Any, table: Any, **kwargs: Any) -> Any:
        pool = self.dialect.engine.pool
        assert pool.checkedout() == 0 and pool.checkedin() == 0, "a sqlite3 connection is open"
        assert not self.dialect._pooled and self.adbc is not None
        seen["adbc"] += 1
        return write(self, conn, table, **kwargs)

    def checked_rows(self: Any) -> Any:
        manager = row_path(self)

        class Checked:
            def __enter__(self_inner) -> None:
                manager.__enter__()
                assert self.adbc is None, "ADBC's connection is open beside sqlite3's"
                seen["rows"] += 1

            def __exit__(self_inner, *exc: Any) -> Any:
                return manager.__exit__(*exc)

        return Checked()

    monkeypatch.setattr(arrow_sqlite.SQLiteArrowWriter, "write", checked_write)
    monkeypatch.setattr(arrow_sqlite.SQLiteArrowWriter, "row_path", checked_rows)
    spoiled = tmp_path / "spoiled.json"
    lines = _demo_lines(demo_backup)
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"id":7,"email"'))
    lines[at] = lines[at].replace(b'"email":"', b'"email":7,"x":"')  # one bad user record
    spoiled.write_bytes(b"\n".join(lines) + b"\n")
    result = rowvault.restore(tmp_path / "target.db", spoiled)
    assert seen["adbc"] > 0 and seen["rows"] >= 1  # the bad batch, and its children's
    assert result.errors[0].startswith("users:7 - ")
    assert all("skipped: parent" in e for e in result.errors[1:])  # its businesses, their products
    conn = sqlite3.connect(tmp_path / "target.db")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def _demo_lines(backup: Path) -> list[bytes]:
    import gzip

    return gzip.decompress(backup.read_bytes()).splitlines()


# -- cutting the file's blocks into batches ---------------------------------------------------


@given(
    n=st.integers(1, 60),
    data=st.data(),
    max_records=st.sampled_from([None, 1, 2, 3, 7, 100]),
    max_bytes=st.sampled_from([1, 10, 1 << 20]),
)
def test_batches_hold_every_record_once_in_order_after_the_skipped(
    n: int, data: st.DataObject, max_records: int | None, max_bytes: int
) -> None:
    records = [b'{"id":%d}' % i for i in range(n)]
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=5))) if n > 1 else []
    bounds = [0, *cuts, n]
    regions = [
        b",\n".join(records[a:b]) + (b",\n" if b < n else b"\n") for a, b in itertools.pairwise(bounds)
    ]
    skip = data.draw(st.integers(0, n))
    got: list[bytes] = []
    for lines in batches(iter(regions), skip=skip, max_bytes=max_bytes, max_records=max_records):
        parts = lines.split()
        assert len(parts) == len(lines) and lines[-1] == parts[-1]
        assert max_records is None or len(lines) <= max_records
        got += parts
    assert got == records[skip:]


# SQLite 3.40's own text-to-double conversion is not correctly rounded ('2.81E-32' becomes
# 2.8099999999999997e-32); Python's and DuckDB's are.
DOUBLES = [2.81e-32, -1.0635301e-27, 0.1, 123.45, 5.0, 1e20, -0.5, None]


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "rows"])
def test_sqlite_decimals_come_back_as_the_very_doubles_they_were(tmp_path: Path, columnar: bool) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as con:
        con.execute("CREATE TABLE prices (id INTEGER PRIMARY KEY, amount NUMERIC(40, 34))")
        con.executemany("INSERT INTO prices VALUES (?, ?)", list(enumerate(DOUBLES)))
    con.close()
    backup = tmp_path / "prices.json"
    rowvault.backup(f"sqlite:///{source}", backup)
    target = tmp_path / "target.db"
    rowvault.restore(f"sqlite:///{target}", backup, columnar=columnar)
    with sqlite3.connect(target) as con:
        got = con.execute("SELECT amount, typeof(amount) FROM prices ORDER BY id").fetchall()
    con.close()
    with sqlite3.connect(source) as con:
        want = con.execute("SELECT amount, typeof(amount) FROM prices ORDER BY id").fetchall()
    con.close()
    assert got == want
    again = rowvault.restore(f"sqlite:///{target}", backup, columnar=columnar)
    assert again.tables["prices"].unchanged == len(DOUBLES)
