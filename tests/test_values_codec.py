"""Values and types without a database: JSON keeps its digits and its text, SQLite's values
that do not fit their declared type are carried as stored, decimals are never rounded
silently, and created types hold every value of the source column."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from rowvault.codec import ColumnType, column_type, restore_decoder
from rowvault.encoding import backup_encoder, stored_json
from rowvault.schema import VettedType, sa_type
from rowvault.typenames import TYPELESS, vetted_type


def decode(target: ColumnType, dialect: str, values: list[Any], source: ColumnType | None = None) -> Any:
    out, errors = restore_decoder(target, dialect, source or target).decode_column(values)
    return list(out), errors


# -- JSON: every digit, and text that is not JSON ------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 12345678901234567890123}',
        "[-9223372036854775809]",
        "[0.1000000000000000000001]",
        "[1e400]",
        "[1e-400]",
        "not json",
        '{"$stored": "looks like a mark"}',
    ],
)
def test_json_that_parsing_would_change_is_carried_as_its_text(text: str) -> None:
    assert stored_json(text) == {"$stored": text}
    assert stored_json(text.encode()) == {"$stored": text}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": [1, 2.5, "x"]}', {"a": [1, 2.5, "x"]}),
        ("[18446744073709551615, -9223372036854775808]", [2**64 - 1, -(2**63)]),
        ("[1.7976931348623157e308, 5e-324, -0.0]", [1.7976931348623157e308, 5e-324, -0.0]),
        ('"2024-01-01T10:00:00.123456+02:00"', "2024-01-01T10:00:00.123456+02:00"),
        ("[1234567.123456789]", [1234567.123456789]),
    ],
)
def test_json_that_parses_exactly_is_carried_as_json(text: str, value: Any) -> None:
    assert stored_json(text) == value


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_json_carried_as_text_is_stored_as_that_text(dialect: str) -> None:
    target = ColumnType("json", "JSON")
    values = [{"$stored": "[1e400]"}, {"$stored": "not json"}, {"a": 1}, "text"]

    out, errors = decode(target, dialect, values)

    assert errors == {}
    assert out == ["[1e400]", "not json", '{"a":1}', '"text"']


# -- SQLite: values as stored ---------------------------------------------------------------


def sqlite_column(kind: Any, sql: str) -> ColumnType:
    return ColumnType(kind, sql, affinity=True)


@pytest.mark.parametrize(
    ("kind", "sql", "stored", "written"),
    [
        ("boolean", "BOOLEAN", 2, {"$stored": 2}),
        ("boolean", "BOOLEAN", 1, True),
        ("date", "DATE", "2024-1-1", {"$stored": "2024-1-1"}),
        ("date", "DATE", "2024-01-01", "2024-01-01"),
        ("time", "TIME", "24:00:00", {"$stored": "24:00:00"}),
        ("datetime", "DATETIME", "2024-01-01 10:00:00+02:00", "2024-01-01 10:00:00+02:00"),
        ("integer", "INTEGER", "abc", {"$stored": "abc"}),
        ("integer", "INTEGER", 1.5, {"$stored": 1.5}),
        ("float", "REAL", "abc", {"$stored": "abc"}),
        ("decimal", "NUMERIC", "abc", {"$stored": "abc"}),
        ("bytes", "BLOB", "text", {"$stored": "text"}),
        ("bytes", "BLOB", 7, {"$stored": 7}),
    ],
)
def test_a_sqlite_value_that_does_not_fit_its_declared_type_is_marked_as_stored(
    kind: Any, sql: str, stored: Any, written: Any
) -> None:
    encode = backup_encoder(sqlite_column(kind, sql), "sqlite")

    assert encode is not None
    assert encode(stored) == written


@pytest.mark.parametrize(
    ("kind", "sql", "written", "stored"),
    [
        ("boolean", "BOOLEAN", {"$stored": 2}, 2),
        ("date", "DATE", {"$stored": "2024-1-1"}, "2024-1-1"),
        ("time", "TIME", {"$stored": "24:00:00"}, "24:00:00"),
        ("datetime", "DATETIME", "2024-01-01 10:00:00+02:00", "2024-01-01 10:00:00+02:00"),
        ("integer", "INTEGER", {"$stored": "abc"}, "abc"),
        ("string", "TEXT", {"$base64": "AGFi"}, b"\x00ab"),
        ("other", TYPELESS, {"$base64": "AGFi"}, b"\x00ab"),
        ("other", TYPELESS, "0012", "0012"),
        ("other", TYPELESS, -0.0, -0.0),
        ("bytes", "BLOB", {"$stored": "text"}, "text"),
    ],
)
def test_into_sqlite_a_sqlite_value_comes_back_as_it_was_stored(
    kind: Any, sql: str, written: Any, stored: Any
) -> None:
    column = sqlite_column(kind, sql)

    assert decode(column, "sqlite", [written]) == ([stored], {})


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.parametrize(
    ("kind", "written", "reason"),
    [
        ("boolean", {"$stored": 2}, "expected true or false, got 2"),
        ("date", {"$stored": "2024-1-1"}, "expected a date (YYYY-MM-DD), got '2024-1-1'"),
        ("integer", {"$stored": "abc"}, "expected an integer, got 'abc'"),
        ("integer", {"$base64": "AGFi"}, "a binary value (a SQLite BLOB) cannot be stored"),
    ],
)
def test_elsewhere_a_value_the_target_type_cannot_hold_is_a_record_error(
    kind: Any, written: Any, reason: str, dialect: str
) -> None:
    _, errors = decode(ColumnType(kind), dialect, [written], sqlite_column(kind, ""))

    assert errors[0].startswith(reason)


def test_a_hand_edited_value_that_does_not_fit_is_still_refused_on_sqlite() -> None:
    column = sqlite_column("integer", "INTEGER")

    _, errors = decode(column, "sqlite", ["many"])

    assert errors == {0: "expected an integer, got 'many'"}


def test_a_typeless_value_becomes_text_on_another_engine() -> None:
    column = ColumnType("other", TYPELESS, affinity=True)

    out, errors = decode(column, "postgresql", ["0012", 12, -0.0, {"$base64": "AGFi"}])

    assert errors == {}
    assert out == ["0012", "12", "-0.0", "AGFi"]


# -- decimals are never rounded silently ----------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "target", "fits", "rounded"),
    [
        (
            "postgresql",
            ColumnType("decimal", "NUMERIC(10, 2)", precision=10, scale=2),
            ["1.50", "2", 3],
            "1.005",
        ),
        ("mysql", ColumnType("decimal", "DECIMAL(10,2)", precision=10, scale=2), ["1.500", "-7.1"], "0.001"),
        ("mysql", ColumnType("decimal", "NUMERIC"), ["0." + "1" * 30], "0." + "1" * 31),
        ("sqlite", ColumnType("decimal", "NUMERIC"), ["0.1", "9223372036854775807"], "1.0000000000000000001"),
    ],
)
def test_a_decimal_the_column_would_round_is_a_record_error(
    dialect: str, target: ColumnType, fits: list[Any], rounded: str
) -> None:
    out, errors = decode(target, dialect, [*fits, rounded], ColumnType("decimal", "NUMERIC"))
    if dialect == "sqlite":  # a fraction goes in as its correctly rounded double, an integer as it is
        fits = [float(v) if "." in v else v for v in fits]

    assert out[: len(fits)] == fits
    assert set(errors) == {len(fits)}
    assert "would be rounded" in errors[len(fits)]


def test_an_unconstrained_postgresql_numeric_takes_every_digit() -> None:
    target = ColumnType("decimal", "NUMERIC")
    value = "12345678901234567890.123456789012345678901234567890"

    assert decode(target, "postgresql", [value]) == ([value], {})


# -- types created on another engine --------------------------------------------------------


def compiled(ctype: ColumnType, dialect: str, source: str, *, indexed: bool = False) -> str:
    created = sa_type(ctype, dialect, indexed=indexed, source_dialect=source)
    if isinstance(created, VettedType):
        return created.sql
    engine_dialect = {
        "sqlite": sqlite.dialect(),
        "postgresql": postgresql.dialect(),
        "mysql": mysql.dialect(),
    }
    return str(created.compile(dialect=engine_dialect[dialect]))


@pytest.mark.parametrize(
    ("ctype", "source", "dialect", "created"),
    [
        (ColumnType("integer", "INTEGER", affinity=True), "sqlite", "postgresql", "BIGINT"),
        (ColumnType("integer", "INTEGER", affinity=True), "sqlite", "mysql", "BIGINT"),
        (ColumnType("integer", "SMALLINT", affinity=True), "sqlite", "postgresql", "BIGINT"),
        (ColumnType("integer", "INTEGER", affinity=True), "sqlite", "sqlite", "INTEGER"),
        (ColumnType("string", "VARCHAR(3)", length=3, affinity=True), "sqlite", "postgresql", "TEXT"),
        (ColumnType("string", "VARCHAR(3)", length=3, affinity=True), "sqlite", "mysql", "LONGTEXT"),
        (
            ColumnType("decimal", "NUMERIC(10, 2)", precision=10, scale=2, affinity=True),
            "sqlite",
            "postgresql",
            "NUMERIC",
        ),
        (ColumnType("float", "REAL", affinity=True), "sqlite", "postgresql", "DOUBLE PRECISION"),
        (ColumnType("other", TYPELESS, affinity=True), "sqlite", "sqlite", ""),
        (ColumnType("other", TYPELESS, affinity=True), "sqlite", "postgresql", "TEXT"),
        (ColumnType("other", TYPELESS, affinity=True), "sqlite", "mysql", "LONGTEXT"),
        (ColumnType("integer", "INTEGER UNSIGNED"), "mysql", "postgresql", "BIGINT"),
        (ColumnType("integer", "SMALLINT UNSIGNED"), "mysql", "postgresql", "INTEGER"),
        (ColumnType("integer", "BIGINT UNSIGNED"), "mysql", "postgresql", "NUMERIC(20, 0)"),
        (ColumnType("integer", "BIGINT UNSIGNED"), "mysql", "mysql", "BIGINT UNSIGNED"),
        (ColumnType("integer", "INTEGER UNSIGNED"), "mysql", "mysql", "INTEGER UNSIGNED"),
        (ColumnType("integer", "INTEGER"), "postgresql", "mysql", "INTEGER"),
    ],
)
def test_a_created_column_holds_every_value_of_its_source(
    ctype: ColumnType, source: str, dialect: str, created: str
) -> None:
    assert compiled(ctype, dialect, source) == created


def test_an_unsigned_64_bit_key_stays_bigint_so_ids_and_foreign_keys_match() -> None:
    ctype = ColumnType("integer", "BIGINT UNSIGNED")

    assert compiled(ctype, "postgresql", "mysql", indexed=True) == "BIGINT"


def test_a_sqlite_column_without_a_type_is_described_as_typeless() -> None:
    ctype = column_type(sa.types.NullType(), sqlite.dialect())

    assert ctype == ColumnType("other", TYPELESS, affinity=True)
    assert ColumnType.from_dict(ctype.to_dict()) == ctype
    assert vetted_type(TYPELESS, "sqlite") == ""
    assert vetted_type(TYPELESS, "postgresql") is None
    assert vetted_type(f"{TYPELESS}(3)", "sqlite") is None
