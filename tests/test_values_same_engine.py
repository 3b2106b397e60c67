"""Backup -> restore on the same engine is lossless, and restoring a backup into the database
it came from changes nothing (issue 8, "values and types": items 8 and 9)."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import rowvault

from .dbdump import rows, run

BIG = '{"n": 12345678901234567890123, "d": 0.1000000000000000000001, "neg": -9223372036854775809}'


def as_json(text: str) -> Any:
    """JSON compared as JSON, every digit of its numbers kept."""
    return json.loads(text, parse_float=Decimal)


def copied(make_db: Any, kind: str, tmp_path: Path, *statements: str) -> tuple[str, str, Path]:
    source, target = make_db(kind), make_db(kind)
    run(source, *statements)
    backup = tmp_path / "backup.json"
    rowvault.backup(source, backup)
    result = rowvault.restore(target, backup)
    assert result.success, result.errors
    return source, target, backup


# -- item 8: lossless on the same engine ----------------------------------------------------


def test_postgresql_intervals_keep_their_months(make_db: Any, tmp_path: Path) -> None:
    values = [
        "1 year",
        "1 year 2 mons 3 days 04:05:06.5",
        "-1 days +02:00:00",
        "1 mon",
        "30 days",
        "-00:00:00.000001",
    ]
    inserts = ", ".join(f"({i}, '{v}')" for i, v in enumerate(values))
    source, target, _ = copied(
        make_db,
        "postgresql",
        tmp_path,
        "CREATE TABLE spans (id int PRIMARY KEY, span interval)",
        f"INSERT INTO spans VALUES {inserts}",
    )

    sql = "SELECT id, span::text FROM spans ORDER BY id"
    assert rows(target, sql) == rows(source, sql)
    assert rows(target, sql)[0] == (0, "1 year")


JSON_TABLES = {
    "sqlite": "CREATE TABLE docs (id INTEGER PRIMARY KEY, doc JSON)",
    "postgresql": "CREATE TABLE docs (id int PRIMARY KEY, doc json, docb jsonb)",
    "mysql": "CREATE TABLE docs (id int PRIMARY KEY, doc json)",
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_json_numbers_keep_every_digit(make_db: Any, kind: str, tmp_path: Path) -> None:
    values = f"'{BIG}', '{BIG}'" if kind == "postgresql" else f"'{BIG}'"
    _, target, _ = copied(
        make_db, kind, tmp_path, JSON_TABLES[kind], f"INSERT INTO docs VALUES (1, {values})"
    )

    cols = "doc::text, docb::text" if kind == "postgresql" else "doc"
    for text in rows(target, f"SELECT {cols} FROM docs")[0]:
        doc = as_json(text)
        assert doc == as_json(BIG)
        assert doc["n"] == 12345678901234567890123
        assert doc["d"] == Decimal("0.1000000000000000000001")


def test_postgresql_json_1e400_backs_up_and_comes_back(make_db: Any, tmp_path: Path) -> None:
    _, target, _ = copied(
        make_db,
        "postgresql",
        tmp_path,
        JSON_TABLES["postgresql"],
        "INSERT INTO docs VALUES (1, '[1e400]', '[1e400]')",
    )

    doc, docb = rows(target, "SELECT doc::text, docb::text FROM docs")[0]
    assert doc == "[1e400]"
    assert as_json(docb) == [Decimal("1e400")]


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_a_json_value_1e400_backs_up(make_db: Any, kind: str, tmp_path: Path) -> None:
    source, target, _ = copied(
        make_db, kind, tmp_path, JSON_TABLES[kind], "INSERT INTO docs VALUES (1, '[1e400]')"
    )

    assert rows(target, "SELECT doc FROM docs") == rows(source, "SELECT doc FROM docs")


def test_json_text_that_does_not_parse_is_kept_as_text(make_db: Any, tmp_path: Path) -> None:
    _, target, _ = copied(
        make_db,
        "sqlite",
        tmp_path,
        JSON_TABLES["sqlite"],
        "INSERT INTO docs VALUES (1, 'not json'), (2, '\"quoted\"'), (3, '{\"$stored\": 1}')",
    )

    assert rows(target, "SELECT id, doc FROM docs ORDER BY id") == [
        (1, "not json"),
        (2, '"quoted"'),
        (3, '{"$stored": 1}'),
    ]


SQLITE_ODD = [
    "CREATE TABLE odd (id INTEGER PRIMARY KEY, flag BOOLEAN, at TIME, day DATE, moment DATETIME,"
    " n INTEGER, amount NUMERIC, ratio REAL, label TEXT, data BLOB, anything)",
    "INSERT INTO odd VALUES (1, 2, '24:00:00', '2024-1-1', '2024-01-02 03:04:05+02:00', 'abc', 'n/a',"
    " 'high', x'00ff', 'text', x'0061')",
    "INSERT INTO odd VALUES (2, 1, '10:00:00', '2024-01-01', '2024-01-02T03:04:05.5', 1.5, 12.5,"
    " 1e308, 'plain', x'', '0012')",
    "INSERT INTO odd VALUES (3, 0, 36000, 19000, 1700000000, 9223372036854775807, -3, 5e-324, '', 7, -0.0)",
]


def stored(path: str) -> list[tuple[Any, ...]]:
    """Every value as SQLite holds it, with its storage class."""
    conn = sqlite3.connect(path)
    cols = ["flag", "at", "day", "moment", "n", "amount", "ratio", "label", "data", "anything"]
    picks = ", ".join(f"{c}, typeof({c})" for c in cols)
    found = conn.execute(f"SELECT id, {picks} FROM odd ORDER BY id").fetchall()
    conn.close()
    return found


def test_sqlite_keeps_every_value_as_it_was_stored(make_db: Any, tmp_path: Path) -> None:
    source, target, _ = copied(make_db, "sqlite", tmp_path, *SQLITE_ODD)

    assert stored(target.removeprefix("sqlite:///")) == stored(source.removeprefix("sqlite:///"))


def test_a_sqlite_column_without_a_type_stays_typeless(make_db: Any, tmp_path: Path) -> None:
    _, target, _ = copied(make_db, "sqlite", tmp_path, *SQLITE_ODD)

    declared = {row[1]: row[2] for row in rows(target, "PRAGMA table_info(odd)")}
    assert declared["anything"] == ""


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_a_decimal_the_column_would_round_is_a_record_error_naming_the_column(
    make_db: Any, kind: str, tmp_path: Path
) -> None:
    source = make_db("sqlite")
    run(
        source,
        "CREATE TABLE prices (id INTEGER PRIMARY KEY, amount NUMERIC)",
        "INSERT INTO prices VALUES (1, 1.5), (2, 1.005), (3, 2)",
    )
    backup = tmp_path / "prices.json"
    rowvault.backup(source, backup)
    target = make_db(kind)
    run(target, "CREATE TABLE prices (id int PRIMARY KEY, amount NUMERIC(10, 2))")

    result = rowvault.restore(target, backup)

    assert result.errors == [
        "prices:2 - column 'amount': '1.005' has more decimal places than the column's "
        f"{'NUMERIC' if kind == 'postgresql' else 'DECIMAL'}(10, 2) keeps (2): it would be rounded"
    ]
    assert sorted(rows(target, "SELECT id, amount FROM prices")) == [
        (1, Decimal("1.50")),
        (3, Decimal("2.00")),
    ]


# -- item 9: restoring into the database it came from changes nothing ---------------------

APP_WRITTEN = {
    "sqlite": [
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, doc JSON, other JSON, note TEXT)",
        "INSERT INTO docs VALUES (1, '{\"a\":  1, \"b\": [1, 2]}', '[1e400]', 'x'),"
        " (2, 'not json', NULL, 'y'), (3, '\"text\"', '{\"n\": 12345678901234567890123}', NULL)",
    ],
    "postgresql": [
        "CREATE TABLE docs (id int PRIMARY KEY, doc json, other jsonb, span interval, note text)",
        "INSERT INTO docs VALUES (1, '{\"a\":  1, \"b\": [1, 2]}', '{\"a\":  1}', '1 year', 'x'),"
        " (2, '[1e400]', '[1e400]', '30 days', 'y'),"
        " (3, '\"text\"', '{\"n\": 12345678901234567890123}', '1 mon', NULL)",
    ],
    "mysql": [
        "CREATE TABLE docs (id int PRIMARY KEY, doc json, other json, note text)",
        "INSERT INTO docs VALUES (1, '{\"a\":  1, \"b\": [1, 2]}', '[1e400]', 'x'),"
        " (2, '[1.0, 2.5]', NULL, 'y'), (3, '\"text\"', '{\"n\": 12345678901234567890123}', NULL)",
    ],
}
VERSIONS = {
    "sqlite": "SELECT id, doc, other FROM docs ORDER BY id",
    "postgresql": "SELECT id, xmin::text FROM docs ORDER BY id",
    "mysql": "SELECT id, doc, other FROM docs ORDER BY id",
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_restoring_into_the_source_changes_nothing(make_db: Any, kind: str, tmp_path: Path) -> None:
    source = make_db(kind)
    run(source, *APP_WRITTEN[kind])
    backup = tmp_path / "backup.json"
    rowvault.backup(source, backup)
    before = rows(source, VERSIONS[kind])

    result = rowvault.restore(source, backup)

    assert result.success, result.errors
    docs = result.tables["docs"]
    assert (docs.created, docs.updated, docs.unchanged) == (0, 0, 3)
    assert rows(source, VERSIONS[kind]) == before  # on PostgreSQL: no row version was written


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_a_changed_json_value_is_still_updated(make_db: Any, kind: str, tmp_path: Path) -> None:
    source = make_db(kind)
    run(source, *APP_WRITTEN[kind])
    backup = tmp_path / "backup.json"
    rowvault.backup(source, backup)
    run(source, "UPDATE docs SET doc = '{\"a\": 2}' WHERE id = 1")

    result = rowvault.restore(source, backup)

    assert result.tables["docs"].updated == 1
    doc = "doc::text" if kind == "postgresql" else "doc"
    assert as_json(rows(source, f"SELECT {doc} FROM docs WHERE id = 1")[0][0]) == {"a": 1, "b": [1, 2]}
