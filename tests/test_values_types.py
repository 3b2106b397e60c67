"""Types created on another engine hold every value the source column can hold (issue 8,
"values and types": item 7): SQLite's INTEGER is 64-bit, its REAL a double, its TEXT, BLOB and
NUMERIC unbounded whatever they are declared as; MySQL's unsigned integers keep their range; a
SQLite column without a type becomes text; a value the target cannot hold at all is a record
error that says why."""

from __future__ import annotations

import base64
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import rowvault

from .dbdump import rows, run

SQLITE_SOURCE = [
    "CREATE TABLE things (id INTEGER PRIMARY KEY, n INTEGER, small SMALLINT, r REAL,"
    " code VARCHAR(3), amount NUMERIC(10, 2), anything)",
    "INSERT INTO things VALUES (1, 9223372036854775807, 2147483648, 1.7976931348623157e308,"
    " 'longer than three', 123.456, 12)",
    "INSERT INTO things VALUES (2, -9223372036854775808, -40000, 5e-324, 'ü🦉', -0.5, 'abc')",
    "INSERT INTO things VALUES (3, 2147483648, 0, -1.5, '', 12345678.125, 1.5)",
    "INSERT INTO things VALUES (4, NULL, NULL, NULL, NULL, NULL, x'00ff')",
]


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_sqlite_columns_are_created_to_hold_every_value(make_db: Any, kind: str, tmp_path: Path) -> None:
    source, target = make_db("sqlite"), make_db(kind)
    run(source, *SQLITE_SOURCE)
    backup = tmp_path / "things.json"
    rowvault.backup(source, backup)

    result = rowvault.restore(target, backup)

    assert result.success, result.errors
    got = rows(target, "SELECT id, n, small, r, code, amount, anything FROM things ORDER BY id")
    assert [r[:5] for r in got] == [
        (1, 2**63 - 1, 2147483648, 1.7976931348623157e308, "longer than three"),
        (2, -(2**63), -40000, 5e-324, "ü🦉"),
        (3, 2147483648, 0, -1.5, ""),
        (4, None, None, None, None),
    ]
    assert [r[5] for r in got] == [Decimal("123.456"), Decimal("-0.5"), Decimal("12345678.125"), None]
    assert [r[6] for r in got] == ["12", "abc", "1.5", base64.b64encode(b"\x00\xff").decode()]


def test_mysql_unsigned_integers_keep_their_range(make_db: Any, tmp_path: Path) -> None:
    source, postgres, sqlite = make_db("mysql"), make_db("postgresql"), make_db("sqlite")
    run(
        source,
        "CREATE TABLE counters (id BIGINT UNSIGNED PRIMARY KEY, small SMALLINT UNSIGNED,"
        " mid INT UNSIGNED, big BIGINT UNSIGNED)",
        "INSERT INTO counters VALUES (18446744073709551615, 65535, 4294967295, 18446744073709551615),"
        " (1, 0, 0, 0)",
    )
    backup = tmp_path / "counters.json"
    rowvault.backup(source, backup)

    into_postgres = rowvault.restore(postgres, backup)
    into_sqlite = rowvault.restore(sqlite, backup)

    # PostgreSQL's BIGINT (a key) cannot hold 2^64-1: the row is refused, saying so.
    assert into_postgres.errors == [
        'counters:18446744073709551615 - value "18446744073709551615" is out of range for type bigint'
    ]
    assert rows(postgres, "SELECT id, small, mid, big FROM counters") == [(1, 0, 0, Decimal(0))]
    assert into_sqlite.errors == [
        "counters:18446744073709551615 - the integer is beyond SQLite's 64-bit range (-2^63 to 2^63-1)"
    ]


def test_mysql_unsigned_values_that_fit_come_back_exactly(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("mysql"), make_db("postgresql")
    run(
        source,
        "CREATE TABLE counters (id INT UNSIGNED PRIMARY KEY, small SMALLINT UNSIGNED, big BIGINT UNSIGNED)",
        "INSERT INTO counters VALUES (4294967295, 65535, 18446744073709551615)",
    )
    backup = tmp_path / "counters.json"
    rowvault.backup(source, backup)

    result = rowvault.restore(target, backup)

    assert result.success, result.errors
    assert rows(target, "SELECT id, small, big FROM counters") == [
        (4294967295, 65535, Decimal(18446744073709551615))
    ]
