"""The fast backup path writes the same bytes as the row path (issue 10 item 4).

SQLite builds each record's line with `json_object` and hands every value it cannot prove it
writes identically to the row path's encoder (`dialects/sqlite_dump.py`); the gzip of every
engine runs on its own thread (`file/writer.py`). The oracle is `backup(..., _row_path=True)`:
today's Python encoder and writer. Both files are compared byte for byte once decompressed,
past the metadata's `createdAt`.
"""

from __future__ import annotations

import gzip
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rowvault
from rowvault.backup import backup as run_backup

from .dbdump import run
from .test_fidelity import ENGINES, build_source

CREATED = re.compile(rb'"createdAt":"[^"]*"')
DECLARED = [
    "INTEGER",
    "REAL",
    "NUMERIC(10, 2)",
    "TEXT",
    "BLOB",
    "BOOLEAN",
    "DATE",
    "TIME",
    "DATETIME",
    "JSON",
    "",
]
"""Declared types of the awkward table: one per kind the encoder knows, and none (typeless)."""
AWKWARD = [
    None,
    0,
    1,
    2,
    -(2**63),
    2**63 - 1,
    0.1,
    100.0,
    1e15,
    999999999999999.9,
    1e16,
    1e-4,
    1e-5,
    0.30000000000000004,
    1.7976931348623157e308,
    5e-324,
    -0.0,
    float("inf"),
    float("-inf"),
    "abc",
    "12.50",
    "-0.5",
    "1e5",
    "1.2.3",
    'nul \x00 \x01 \x1f \x7f \u2028 ü🦉 "q" \\ /',
    "2024-02-29",
    "2024-02-30",
    "0000-01-01",
    "2024-1-1",
    "12:30:00",
    "24:00:00",
    "07:45:00.000000",
    "07:45:00.5",
    "2024-01-02 03:04:05.123456",
    "2024-01-02 03:04:05",
    "2024-01-02T03:04:05",
    "2024-01-02 03:04:05.123456+02:00",
    "2024-01-02 03:04:05.12345Z",
    "2024-01-02 03:04:05.12345 ",
    "2024-02-30 03:04:05",
    '{"a": [1, 2.5, "\\u00fc"], "b": {"c": null}}',
    '{"a":1,"a":2}',
    '{"n": 12345678901234567890123}',
    "[1e400]",
    '{"$stored": 1}',
    "not json",
    "null",
    b"",
    b"\x00\xff",
    bytes(range(256)),
]


def backup_bytes(db: str, path: Path, *, row_path: bool) -> bytes:
    run_backup(db, path, _row_path=row_path)
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return CREATED.sub(b'"createdAt":""', data)


def assert_same_file(db: str, folder: Path, suffix: str = ".json.gz") -> bytes:
    fast = backup_bytes(db, folder / f"fast{suffix}", row_path=False)
    rows = backup_bytes(db, folder / f"rows{suffix}", row_path=True)
    assert fast.splitlines() == rows.splitlines()  # a differing line is shown, not a blob
    assert fast == rows
    return fast


def sqlite_table(path: Path, values: list[Any], declared: list[str] = DECLARED) -> str:
    """Each value in a column of each declared type (SQLite keeps what does not fit)."""
    conn = sqlite3.connect(path)
    cols = ", ".join(f'"c{i}" {t}' for i, t in enumerate(declared))
    conn.execute(f"CREATE TABLE awkward (id INTEGER PRIMARY KEY, {cols})")
    marks = ", ".join("?" * (len(declared) + 1))
    conn.executemany(
        f"INSERT INTO awkward VALUES ({marks})", [(n, *([v] * len(declared))) for n, v in enumerate(values)]
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_every_awkward_sqlite_value_in_every_declared_type_is_written_as_the_row_path_does(
    tmp_path: Path,
) -> None:
    db = sqlite_table(tmp_path / "awkward.db", AWKWARD)

    data = assert_same_file(db, tmp_path)
    assert data.count(b'"$stored"') > 50  # the misfits are there, marked, not skipped
    assert data.count(b'"$base64"') > 10


def test_plain_and_gzip_files_are_the_same_bytes(tmp_path: Path) -> None:
    db = sqlite_table(tmp_path / "awkward.db", AWKWARD[:20])
    assert assert_same_file(db, tmp_path, ".json") == assert_same_file(db, tmp_path / "..", ".json.gz")


@pytest.mark.parametrize("source", ENGINES)
def test_the_fidelity_tables_back_up_to_the_same_bytes(make_db: Any, source: str, tmp_path: Path) -> None:
    db = make_db(source)
    build_source(db, source)

    data = assert_same_file(db, tmp_path)
    assert data.count(b"\n") > 60


ROUND_TRIP = [None, 1, 2**62, 0.1, 100.0, 6.818, "abc", "ü🦉", "2024-02-29", "07:45:00.000000", b"\x00\xff"]


def test_the_fast_path_backup_restores_to_the_same_rows(tmp_path: Path) -> None:
    db = sqlite_table(tmp_path / "awkward.db", ROUND_TRIP)
    rowvault.backup(db, tmp_path / "fast.json.gz")
    target = f"sqlite:///{tmp_path / 'copy.db'}"

    result = rowvault.restore(target, tmp_path / "fast.json.gz")

    assert result.success, result.errors[:5]
    query = "SELECT * FROM awkward ORDER BY id"
    got = sqlite3.connect(tmp_path / "copy.db").execute(query).fetchall()
    assert got == sqlite3.connect(tmp_path / "awkward.db").execute(query).fetchall()


def test_text_that_is_not_utf8_stops_the_backup_naming_the_table(tmp_path: Path) -> None:
    db = sqlite_table(tmp_path / "bad.db", [b"\xff\xfe"], ["TEXT"])
    run(db, "UPDATE awkward SET c0 = CAST(c0 AS TEXT)")

    with pytest.raises(rowvault.BackupAborted, match=r"awkward.*UTF-8|UTF-8.*awkward"):
        rowvault.backup(db, tmp_path / "bad.json")


def test_a_large_table_is_read_in_batches_and_keeps_its_order(tmp_path: Path) -> None:
    values = [v for _ in range(300) for v in AWKWARD[:25]]
    db = sqlite_table(tmp_path / "many.db", values, ["INTEGER", "REAL", "DATETIME"])

    data = assert_same_file(db, tmp_path)
    assert data.count(b'{"id":') == len(values)


_NOT_SCREENED = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(min_size=1),
    st.binary(),
    st.sampled_from([v for v in AWKWARD if v != "" and not isinstance(v, bytes)]),
    st.datetimes().map(str),
    st.times().map(str),
    st.dates().map(str),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_NOT_SCREENED, min_size=1, max_size=30))
def test_any_sqlite_values_are_written_as_the_row_path_does(tmp_path_factory: Any, values: list[Any]) -> None:
    folder = tmp_path_factory.mktemp("prop")
    db = sqlite_table(folder / "p.db", [v for v in values if not _screened_misfit(v)])
    assert_same_file(db, folder)


def _screened_misfit(value: Any) -> bool:
    """Values the row path's batch screens let through unmarked next to values that fit (see
    the xfail below): an empty text, a 0 in a TIME column, a 0.0 in an INTEGER column."""
    return value == "" or (type(value) in (int, float) and value == 0)


@pytest.mark.xfail(
    strict=True,
    reason="row-path defect (encoding.py screens filter falsy values): an empty text in an INTEGER "
    'column is written as "" next to integers but as {"$stored": ""} next to a misfit',
)
def test_the_row_path_marks_an_empty_text_in_an_integer_column_whatever_its_neighbours(
    tmp_path: Path,
) -> None:
    alone = backup_bytes(
        sqlite_table(tmp_path / "a.db", [1, ""], ["INTEGER"]), tmp_path / "a.json", row_path=True
    )
    assert b'{"$stored":""}' in alone


def test_the_fast_path_marks_an_empty_text_in_an_integer_column(tmp_path: Path) -> None:
    db = sqlite_table(tmp_path / "a.db", [1, ""], ["INTEGER"])
    assert b'"c0":{"$stored":""}' in backup_bytes(db, tmp_path / "a.json", row_path=False)
