"""The fidelity matrix: one source database per engine holding every column kind with its edge
values, backed up and restored into an empty database of each engine (3 x 3 cells). Every
value comes back exactly - or as the README's table of engine limits says: a documented change,
or a record error that says why. The expected outcome of every cell is written here."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import rowvault

ENGINES = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True)
class Raw:
    """A value written into the source as SQL text (what the engine itself makes of it)."""

    sql: str


@dataclass(frozen=True)
class Kind:
    """One table, `t_<name>` (id, v), with the source type and edge values on each engine."""

    name: str
    types: dict[str, str]
    values: dict[int, Any]
    """Values every engine holds, by id."""
    extra: dict[str, dict[int, Any]] = field(default_factory=dict)
    """Values only some engines hold (a NaN, a SQLite DATE '2024-1-1'), by engine and id."""


LONG = "a" * 100_000 + "🦉"
DOCS = {
    1: '{"a": [1, 2.5, "ü"], "b": {"c": null}}',
    2: '{"n": 12345678901234567890123, "d": 0.1000000000000000000001, "m": -9223372036854775809}',
    3: "[1e400]",
    4: '"text"',
    5: '{"$stored": 1}',
}
KINDS = [
    Kind(
        "ints",
        {"sqlite": "INTEGER", "postgresql": "bigint", "mysql": "BIGINT"},
        {1: 0, 2: -1, 3: 2**31, 4: 2**63 - 1, 5: -(2**63)},
    ),
    Kind(
        "floats",
        {"sqlite": "REAL", "postgresql": "double precision", "mysql": "DOUBLE"},
        {
            1: 1.7976931348623157e308,
            2: -1.7976931348623157e308,
            3: 5e-324,
            4: 2.2250738585072014e-308,
            5: 0.1,
        },
        {
            "postgresql": {10: -0.0, 11: Raw("'NaN'"), 12: Raw("'Infinity'"), 13: Raw("'-Infinity'")},
            "sqlite": {12: Raw("9e999"), 13: Raw("-9e999")},
        },
    ),
    Kind(
        "decimals",
        {"sqlite": "NUMERIC", "postgresql": "numeric", "mysql": "DECIMAL(65, 30)"},
        {1: Raw("0.1"), 2: Raw("123.4500"), 3: Raw("-12345678901234567890.123456789"), 4: Raw("0")},
        {
            "postgresql": {10: Raw("0.1234567890123456789012345678901234567890")},
            "mysql": {11: Raw("99999999999999999999999999999999999.999999999999999999999999999999")},
        },
    ),
    Kind(
        "texts",
        {"sqlite": "TEXT", "postgresql": "text", "mysql": "LONGTEXT"},
        {1: "", 2: "ü🦉 emoji 🎉 ünïcödé", 3: "tab\tnew\nline 'single' \"double\" back\\slash", 4: LONG},
        {"sqlite": {10: "nul \x00 byte"}, "mysql": {10: "nul \x00 byte"}},
    ),
    Kind(
        "blobs",
        {"sqlite": "BLOB", "postgresql": "bytea", "mysql": "LONGBLOB"},
        {1: b"", 2: b"\x00", 3: bytes(range(256)), 4: b"\x00\xff" * 500},
    ),
    Kind(
        "bools",
        {"sqlite": "BOOLEAN", "postgresql": "boolean", "mysql": "BOOL"},
        {1: True, 2: False},
        {"sqlite": {10: Raw("2")}},
    ),
    Kind(
        "dates",
        {"sqlite": "DATE", "postgresql": "date", "mysql": "DATE"},
        {1: Raw("'2024-02-29'"), 2: Raw("'0001-01-01'"), 3: Raw("'9999-12-31'")},
        {"sqlite": {10: Raw("'2024-1-1'")}},
    ),
    Kind(
        "times",
        {"sqlite": "TIME", "postgresql": "time", "mysql": "TIME(6)"},
        {1: Raw("'00:00:00'"), 2: Raw("'23:59:59.999999'"), 3: Raw("'12:30:00'")},
        {"sqlite": {10: Raw("'24:00:00'")}},
    ),
    Kind(
        "moments",
        {"sqlite": "DATETIME", "postgresql": "timestamptz", "mysql": "DATETIME(6)"},
        {},
        {
            "sqlite": {
                1: Raw("'2024-01-02 03:04:05.123456+02:00'"),
                2: Raw("'1970-01-01 00:00:00'"),
                3: Raw("'2038-01-19T03:14:08'"),
            },
            "postgresql": {
                1: Raw("'2024-01-02 03:04:05.123456+02'"),
                2: Raw("'1970-01-01 00:00:00+00'"),
                3: Raw("'2038-01-19 05:14:08+02'"),
            },
            "mysql": {
                1: Raw("'2024-01-02 01:04:05.123456'"),
                2: Raw("'1970-01-01 00:00:00'"),
                3: Raw("'2038-01-19 03:14:08'"),
            },
        },
    ),
    Kind(
        "spans",
        {"postgresql": "interval"},
        {},
        {
            "postgresql": {
                1: Raw("'1 year 2 mons'"),
                2: Raw("'-1 days +02:00'"),
                3: Raw("'00:00:00.000001'"),
                4: Raw("'3 days 04:05:06.5'"),
            }
        },
    ),
    Kind(
        "docs",
        {"sqlite": "JSON", "postgresql": "json", "mysql": "JSON"},
        DOCS,
        {"sqlite": {10: "not json"}},
    ),
    Kind("docsb", {"postgresql": "jsonb"}, {}, {"postgresql": DOCS}),
    Kind(
        "anything",
        {"sqlite": ""},
        {},
        {
            "sqlite": {
                1: Raw("12"),
                2: Raw("'abc'"),
                3: Raw("1.5"),
                4: Raw("x'00ff'"),
                5: Raw("'0012'"),
                6: Raw("-0.0"),
            }
        },
    ),
]
BY_NAME = {k.name: k for k in KINDS}


@dataclass(frozen=True)
class Refused:
    """A record error: the row is not written, and its reason says this."""

    reason: str


@dataclass(frozen=True)
class Becomes:
    """A documented change: the value comes back as this (compared as `normal` makes it)."""

    value: Any


NO_NAN_IN_MARIADB = Refused(
    "cannot be stored: MariaDB/MySQL DOUBLE and FLOAT columns hold no NaN or infinity"
)
NO_NUL_IN_POSTGRESQL = Refused("PostgreSQL text fields cannot contain NUL (0x00) bytes")
TOO_MANY_DIGITS_FOR_SQLITE = Refused("has more digits than SQLite keeps")
TYPELESS_AS_TEXT = {
    ("anything", 1): Becomes("12"),
    ("anything", 2): Becomes("abc"),
    ("anything", 3): Becomes("1.5"),
    ("anything", 4): Becomes("AP8="),  # a blob: its base64
    ("anything", 5): Becomes("0012"),
    ("anything", 6): Becomes("-0.0"),
}
SQLITE_MISFITS = {
    ("bools", 10): Refused("expected true or false, got 2"),
    ("dates", 10): Refused("expected a date (YYYY-MM-DD), got '2024-1-1'"),
}
ISO_SPANS = {
    ("spans", 1): Becomes("P1Y2M"),
    ("spans", 2): Becomes("P-1DT2H"),
    ("spans", 3): Becomes("PT0.000001S"),
    ("spans", 4): Becomes("P3DT4H5M6.5S"),
}
EXPECTED: dict[tuple[str, str], dict[tuple[str, int], Refused | Becomes]] = {
    ("sqlite", "sqlite"): {},
    ("sqlite", "postgresql"): {
        **SQLITE_MISFITS,
        ("times", 10): Refused("expected a time (HH:MM:SS), got '24:00:00'"),
        ("texts", 10): NO_NUL_IN_POSTGRESQL,
        ("docs", 10): Refused("invalid input syntax for type json"),
        **TYPELESS_AS_TEXT,
    },
    ("sqlite", "mysql"): {
        **SQLITE_MISFITS,
        ("floats", 12): NO_NAN_IN_MARIADB,
        ("floats", 13): NO_NAN_IN_MARIADB,
        ("docs", 10): Refused("CONSTRAINT `t_docs.v` failed"),  # MariaDB's json_valid check
        **TYPELESS_AS_TEXT,
    },
    ("postgresql", "sqlite"): {
        ("floats", 10): Becomes("0.0"),  # SQLite's REAL stores -0.0 as 0
        ("floats", 11): Refused("NaN cannot be stored: SQLite stores a NaN as NULL"),
        ("decimals", 3): TOO_MANY_DIGITS_FOR_SQLITE,
        ("decimals", 10): TOO_MANY_DIGITS_FOR_SQLITE,
        **ISO_SPANS,
    },
    ("postgresql", "postgresql"): {},
    ("postgresql", "mysql"): {
        ("floats", 10): Becomes("0.0"),  # MariaDB's DOUBLE stores -0.0 as 0
        ("floats", 11): NO_NAN_IN_MARIADB,
        ("floats", 12): NO_NAN_IN_MARIADB,
        ("floats", 13): NO_NAN_IN_MARIADB,
        ("decimals", 10): Refused("has more decimal places than the column's DECIMAL(65, 30) keeps (30)"),
        **ISO_SPANS,
    },
    ("mysql", "sqlite"): {
        ("decimals", 3): TOO_MANY_DIGITS_FOR_SQLITE,
        ("decimals", 11): TOO_MANY_DIGITS_FOR_SQLITE,
    },
    ("mysql", "postgresql"): {("texts", 10): NO_NUL_IN_POSTGRESQL},
    ("mysql", "mysql"): {},
}


# -- the source databases -------------------------------------------------------------------


def held(kind: Kind, engine: str) -> dict[int, Any]:
    return {**kind.values, **kind.extra.get(engine, {})} if engine in kind.types else {}


def build_source(url: str, engine: str) -> None:
    db = sa.create_engine(url)
    with db.begin() as conn:
        for kind in KINDS:
            if engine not in kind.types:
                continue
            table = f"t_{kind.name}"
            conn.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v {kind.types[engine]})")
            for id_, value in held(kind, engine).items():
                if isinstance(value, Raw):
                    conn.exec_driver_sql(f"INSERT INTO {table} VALUES ({id_}, {value.sql})")
                else:
                    conn.execute(sa.text(f"INSERT INTO {table} VALUES (:id, :v)"), {"id": id_, "v": value})
    db.dispose()


def read(url: str, engine: str) -> dict[str, dict[int, Any]]:
    """Every table's values as the target's driver hands them out (JSON and intervals as the
    database's text)."""
    if engine == "sqlite":
        conn = sqlite3.connect(sa.make_url(url).database or "")
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = {n: dict(conn.execute(f"SELECT id, v FROM {n}").fetchall()) for n in names}
        conn.close()
        return found
    db = sa.create_engine(url)
    found = {}
    with db.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            cast = "::text" if engine == "postgresql" and name in ("t_docs", "t_docsb", "t_spans") else ""
            found[name] = dict(conn.exec_driver_sql(f"SELECT id, v{cast} FROM {name}").fetchall())
    db.dispose()
    return found


# -- comparing values across engines --------------------------------------------------------


def clock(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{text}.{value.microseconds:06d}" if value.microseconds else text


def normal(kind: str, value: Any) -> Any:
    """A value as it compares across engines: each engine's driver hands out its own Python
    types (a DOUBLE as Decimal, TIME as timedelta, BOOL as 1), the value itself must match."""
    if value is None:
        return None
    if kind == "floats":
        return repr(float(value))  # -0.0 is not 0.0; nan is nan
    if kind == "decimals":
        return Decimal(str(value))  # compares by value: 123.45 == 123.4500
    if kind == "blobs":
        return bytes(value)
    if kind == "bools":
        return bool(value) if value in (0, 1) else value
    if kind == "dates":
        return value.isoformat() if isinstance(value, date) else value
    if kind == "times":
        if isinstance(value, timedelta):
            return clock(value)
        if isinstance(value, str):
            try:
                return time.fromisoformat(value).isoformat()
            except ValueError:
                return value  # 24:00:00
        return value.isoformat()
    if kind == "moments":
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return (moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment).isoformat()
    if kind in ("docs", "docsb") and isinstance(value, str):
        try:
            return json.loads(value, parse_float=Decimal)
        except ValueError:
            return ("not JSON", value)
    return value


def exact(kind: str, value: Any, same_engine: bool) -> Any:
    """Within one engine a value must come back as the same Python value of the same type
    (SQLite: the same storage class); JSON compares as JSON."""
    if same_engine and kind not in ("docs", "docsb"):
        return (type(value).__name__, repr(value))
    return normal(kind, value)


# -- the matrix -----------------------------------------------------------------------------


def cell_problems(source: str, target: str, result: Any, want: dict, got: dict) -> list[str]:
    expected = EXPECTED[(source, target)]
    errors = {m.split(" - ", 1)[0]: m.split(" - ", 1)[1] for m in result.errors}
    problems = []
    for table, values in want.items():
        name = table.removeprefix("t_")
        for id_, value in values.items():
            outcome = expected.get((name, id_))
            where = f"{source} -> {target}, {table}:{id_}"
            error = errors.pop(f"{table}:{id_}", None)
            stored = got.get(table, {})
            if isinstance(outcome, Refused):
                if error is None or outcome.reason not in error or id_ in stored:
                    problems.append(f"{where}: expected refused ({outcome.reason}), got {error!r}")
                continue
            if error is not None or id_ not in stored:
                problems.append(f"{where}: expected the row, got the error {error!r}")
                continue
            wanted = outcome.value if isinstance(outcome, Becomes) else exact(name, value, source == target)
            came = (
                normal(name, stored[id_])
                if isinstance(outcome, Becomes)
                else exact(name, stored[id_], source == target)
            )
            if came != wanted:
                problems.append(f"{where}: expected {str(wanted)[:80]!r}, got {str(came)[:80]!r}")
    problems += [f"{source} -> {target}: unexpected error {k} - {v}" for k, v in errors.items()]
    return problems


def test_every_cell_of_the_expected_outcomes_names_a_value_the_source_holds() -> None:
    for (source, _), cells in EXPECTED.items():
        for name, id_ in cells:
            assert id_ in held(BY_NAME[name], source), (source, name, id_)


@pytest.mark.parametrize("source", ENGINES)
def test_fidelity_matrix(make_db: Any, source: str, tmp_path: Path) -> None:
    source_url = make_db(source)
    build_source(source_url, source)
    backup = tmp_path / "backup.json.gz"
    rowvault.backup(source_url, backup)
    want = read(source_url, source)
    assert sum(map(len, want.values())) == sum(len(held(k, source)) for k in KINDS)

    problems = []
    for target in ENGINES:
        target_url = make_db(target)
        result = rowvault.restore(target_url, backup)
        assert result.status == "completed", (target, result.errors)
        problems += cell_problems(source, target, result, want, read(target_url, target))

    assert problems == []
