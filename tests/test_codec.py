"""Values cross between drivers and the backup file per column kind: good values convert as
the target dialect stores them, bad values become readable per-record reasons."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeEngine

from rowvault.codec import ColumnType, column_type, restore_decoder
from rowvault.encoding import backup_encoder, clock_time, iso_duration

DIALECTS = ["sqlite", "postgresql", "mysql"]


def decode(
    kind: Any,
    dialect: str,
    values: list[Any],
    *,
    timezone: bool = False,
    source: ColumnType | None = None,
) -> tuple[list[Any], dict[int, str]]:
    decoder = restore_decoder(ColumnType(kind, timezone=timezone), dialect, source)
    out, errors = decoder.decode_column(values)
    return list(out), errors


# -- restore: good values ------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("kind", "given", "stored"),
    [
        ("integer", [1, "2", 3.0, None], [1, 2, 3, None]),
        ("float", [1.5, 2, "NaN", "-Infinity"], [1.5, 2, math.nan, -math.inf]),
        ("decimal", ["12.34", "0.10", 5], ["12.34", "0.10", 5]),
        ("string", ["a", 5, {"k": 1}, None], ["a", "5", '{"k":1}', None]),
        ("boolean", [True, 0, 1, "yes", "off"], [True, False, True, True, False]),
        ("date", ["2024-02-29", "2024-02-29T00:00:00", "20240229"], ["2024-02-29"] * 3),
        ("bytes", ["aGVsbG8=", ""], [b"hello", b""]),
        ("json", [{"a": [1]}, "text", 3, None], ['{"a":[1]}', '"text"', "3", None]),
        ("array", [[1, 2], []], [[1, 2], []]),
        ("other", [{"a": 1}, "x", 3], ['{"a":1}', "x", 3]),
    ],
)
def test_good_values_convert_for_every_dialect(
    kind: str, given: list[Any], stored: list[Any], dialect: str
) -> None:
    out, errors = decode(kind, dialect, given)
    if kind == "decimal" and dialect == "sqlite":
        stored = [12.34, 0.1, 5]  # doubles, correctly rounded (SQLite's own reading is not)

    assert errors == {}
    for got, want in zip(out, stored, strict=True):
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == want
            assert type(got) is type(want)


def test_sqlite_stores_offsets_as_utc_and_keeps_naive_times_and_epoch_numbers() -> None:
    given = ["2024-01-02T03:04:05+02:00", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.5", 17, 1.5]

    out, errors = decode("datetime", "sqlite", given)

    assert errors == {}
    assert out == [
        "2024-01-02 01:04:05.000000+00:00",
        "2024-01-02 03:04:05.000000+00:00",
        "2024-01-02 03:04:05.500000",
        17,
        1.5,
    ]


@pytest.mark.parametrize(
    ("dialect", "timezone", "stored"),
    [
        ("sqlite", False, "2024-01-02 01:04:05.000000+00:00"),
        ("mysql", False, "2024-01-02 01:04:05.000000"),
        ("mysql", True, "2024-01-02 01:04:05.000000"),
        ("postgresql", False, "2024-01-02T01:04:05"),
        ("postgresql", True, "2024-01-02T03:04:05+02:00"),
    ],
)
def test_a_datetime_with_an_offset_is_stored_as_the_dialect_keeps_it(
    dialect: str, timezone: bool, stored: str
) -> None:
    out = decode("datetime", dialect, ["2024-01-02T03:04:05+02:00"], timezone=timezone)

    assert out == ([stored], {})


@pytest.mark.parametrize(
    ("dialect", "stored"),
    [("sqlite", "13:45:00.000000"), ("mysql", "13:45:00"), ("postgresql", "13:45:00")],
)
def test_times_are_written_in_the_dialects_form(dialect: str, stored: str) -> None:
    assert decode("time", dialect, ["13:45:00"]) == ([stored], {})
    fraction = "13:45:00.25" if dialect == "mysql" else "13:45:00.250000"
    assert decode("time", dialect, ["13:45:00.25"]) == ([fraction], {})


def test_json_from_a_text_column_is_passed_on_as_the_text_it_was() -> None:
    source = ColumnType("string")

    out, errors = decode("json", "postgresql", ['{"a": 1}', {"b": 2}], source=source)

    assert errors == {}
    assert out == ['{"a": 1}', '{"b":2}']


# -- restore: bad values -------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("kind", "bad", "reason"),
    [
        ("integer", "abc", "expected an integer, got 'abc'"),
        ("integer", 1.5, "expected an integer, got 1.5"),
        ("float", "fast", "expected a number, got 'fast'"),
        ("float", True, "expected a number, got True"),
        ("decimal", "12,34", "expected a decimal number, got '12,34'"),
        ("decimal", False, "expected a decimal number, got False"),
        ("boolean", 2, "expected true or false, got 2"),
        ("boolean", "maybe", "expected true or false, got 'maybe'"),
        ("date", "2024-02-30", "expected a date (YYYY-MM-DD), got '2024-02-30'"),
        ("date", "2024-02-29T10:00:00", "expected a date (YYYY-MM-DD), got '2024-02-29T10:00:00'"),
        ("time", "25:00", "expected a time (HH:MM:SS), got '25:00'"),
        ("datetime", "yesterday", "expected an ISO 8601 datetime, got 'yesterday'"),
        ("bytes", "not base64!", "expected base64 text, got 'not base64!'"),
        ("bytes", 5, "expected base64 text, got 5"),
        ("array", "x", "unexpected value 'x'"),
    ],
)
def test_a_bad_value_is_reported_with_a_reason_not_raised(
    kind: str, bad: Any, reason: str, dialect: str
) -> None:
    out, errors = decode(kind, dialect, [bad])

    assert errors == {0: reason}
    assert out == [None]


@pytest.mark.parametrize(
    ("kind", "values", "good", "bad_rows"),
    [
        ("integer", [1, "abc", 3, None, "x"], [1, None, 3, None, None], {1, 4}),
        ("decimal", ["1.0", "abc", "2.5"], ["1.0", None, "2.5"], {1}),
        ("datetime", ["2024-01-02T00:00:00", "soon"], ["2024-01-02 00:00:00.000000", None], {1}),
        ("bytes", ["aGk=", "%%%"], [b"hi", None], {1}),
    ],
)
def test_a_column_mixing_good_and_bad_values_converts_the_good_ones(
    kind: str, values: list[Any], good: list[Any], bad_rows: set[int]
) -> None:
    out, errors = decode(kind, "mysql", values)

    assert out == good
    assert set(errors) == bad_rows


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_epoch_numbers_are_refused_outside_sqlite(dialect: str) -> None:
    _, errors = decode("datetime", dialect, [1700000000])

    assert errors == {0: "expected an ISO 8601 datetime, got 1700000000"}


def test_a_long_bad_value_is_shortened_in_the_reason() -> None:
    _, errors = decode("integer", "sqlite", ["x" * 500])

    assert errors[0].startswith("expected an integer, got 'xxx")
    assert errors[0].endswith("...")
    assert len(errors[0]) < 100


# -- backup: driver value -> JSON value ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "dialect", "value", "written"),
    [
        ("float", "sqlite", math.nan, "NaN"),
        ("float", "postgresql", math.inf, "Infinity"),
        ("float", "mysql", -math.inf, "-Infinity"),
        ("float", "mysql", 1.5, 1.5),
        ("time", "mysql", timedelta(hours=13, minutes=5, seconds=7), "13:05:07"),
        ("time", "mysql", timedelta(hours=13, seconds=7, microseconds=250), "13:00:07.000250"),
        ("time", "mysql", timedelta(hours=838, minutes=59, seconds=59), "838:59:59"),
        ("time", "mysql", timedelta(hours=-1), "-01:00:00"),
        ("boolean", "sqlite", 0, False),
        ("boolean", "sqlite", 1, True),
        ("boolean", "sqlite", 7, 7),
        ("json", "sqlite", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("json", "mysql", b"[1]", [1]),
        ("json", "mysql", "not json", {"$stored": "not json"}),
        ("decimal", "postgresql", Decimal("12.30"), "12.30"),
        ("bytes", "mysql", b"hello", "aGVsbG8="),
        ("interval", "postgresql", timedelta(days=1, seconds=7384.5), "P1DT2H3M4.5S"),
    ],
)
def test_backup_writes_driver_values_as_json_values(
    kind: Any, dialect: str, value: Any, written: Any
) -> None:
    encode = backup_encoder(ColumnType(kind), dialect)

    assert encode is not None
    assert encode(value) == written
    assert encode(None) is None


@pytest.mark.parametrize(
    ("kind", "dialect"),
    [("json", "postgresql"), ("boolean", "postgresql"), ("integer", "sqlite"), ("string", "mysql")],
)
def test_values_the_driver_hands_out_ready_are_written_untouched(kind: Any, dialect: str) -> None:
    assert backup_encoder(ColumnType(kind), dialect) is None


def test_iso_duration_is_what_its_docstring_shows() -> None:
    assert iso_duration(timedelta(days=1, hours=2, minutes=3, seconds=4.5)) == "P1DT2H3M4.5S"


def test_a_negative_time_with_a_fraction_keeps_its_value() -> None:
    assert clock_time(timedelta(seconds=-1.5)) == "-00:00:01.500000"


@pytest.mark.parametrize("value", [timedelta(hours=25), timedelta(hours=-1)])
def test_a_mysql_time_duration_written_by_backup_restores_into_mysql(value: timedelta) -> None:
    # MySQL TIME holds durations beyond a day and below zero; they pass as written.
    text = clock_time(value)

    assert decode("time", "mysql", [text], source=ColumnType("time")) == ([text], {})


# -- column types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sa_type", "expected"),
    [
        (sa.Integer(), ColumnType("integer", "INTEGER")),
        (sa.BigInteger(), ColumnType("integer", "BIGINT")),
        (sa.Numeric(10, 2), ColumnType("decimal", "NUMERIC(10, 2)", precision=10, scale=2)),
        (sa.DateTime(timezone=True), ColumnType("datetime", "DATETIME", timezone=True)),
        (sa.DateTime(), ColumnType("datetime", "DATETIME")),
        (sa.JSON(), ColumnType("json", "JSON")),
        (postgresql.JSONB(), ColumnType("json", "JSONB")),
        (sa.LargeBinary(), ColumnType("bytes", "BLOB")),
        (sa.Uuid(), ColumnType("uuid", "CHAR(32)")),
        (mysql.TINYINT(display_width=1), ColumnType("boolean", "TINYINT")),
        (mysql.TINYINT(), ColumnType("integer", "TINYINT")),
        (sa.Boolean(), ColumnType("boolean", "BOOLEAN")),
        (sa.Float(), ColumnType("float", "FLOAT")),
        (sa.String(20), ColumnType("string", "VARCHAR(20)", length=20)),
        (sa.Date(), ColumnType("date", "DATE")),
        (sa.Time(), ColumnType("time", "TIME")),
        (postgresql.INTERVAL(), ColumnType("interval", "INTERVAL")),
        (sa.ARRAY(sa.Integer()), ColumnType("array", "ARRAY")),
    ],
)
def test_column_type_maps_sqlalchemy_types(sa_type: TypeEngine[Any], expected: ColumnType) -> None:
    assert column_type(sa_type) == expected


def test_column_type_survives_the_metadata_round_trip() -> None:
    ctype = column_type(sa.Numeric(10, 2))

    assert ColumnType.from_dict(ctype.to_dict()) == ctype
    assert ColumnType.from_dict({"type": "hologram"}).kind == "other"


def test_a_time_with_an_offset_becomes_utc_where_the_engine_has_no_time_zones() -> None:
    assert decode("time", "sqlite", ["13:45:00+02:00"]) == (["11:45:00.000000"], {})
    assert decode("time", "mysql", ["00:30:00+01:00"]) == (["23:30:00.000000"], {})
