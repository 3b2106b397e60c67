"""Column types, and how values cross between a database driver and the backup file.

Every column gets a portable *kind* (integer, decimal, datetime, bytes, json, ...). On backup,
`backup_encoder` turns what the driver hands out into a JSON value: datetimes as ISO 8601,
Decimal as a string, bytes as base64, JSON columns as JSON. On restore, `restore_decoder`
turns a JSON value into what the target's driver stores faithfully; it checks each value
against the target column's kind, so a bad value is a record error with a reason, not a
corrupt row (SQLite would store "abc" in an INTEGER column).

Decoding works a column at a time: a batch's column is first checked with `set(map(type,
values))`, which runs at C speed; only a column that holds an unexpected type is walked value
by value to name the bad records.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeEngine

Kind = Literal[
    "integer",
    "float",
    "decimal",
    "string",
    "boolean",
    "date",
    "time",
    "datetime",
    "bytes",
    "uuid",
    "json",
    "interval",
    "array",
    "other",
]
KINDS: frozenset[str] = frozenset(Kind.__args__)  # type: ignore[attr-defined]
NoneType = type(None)


@dataclass(frozen=True)
class ColumnType:
    """A column's type as rowvault carries it between databases."""

    kind: Kind
    sql: str = ""
    timezone: bool = False
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "sqlType": self.sql}
        if self.timezone:
            data["timezone"] = True
        for key in ("length", "precision", "scale"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnType:
        kind = data.get("type", "other")
        return cls(
            kind=kind if kind in KINDS else "other",
            sql=str(data.get("sqlType") or ""),
            timezone=bool(data.get("timezone", False)),
            length=_whole(data.get("length")),
            precision=_whole(data.get("precision")),
            scale=_whole(data.get("scale")),
        )


def _whole(value: Any) -> int | None:
    """A type parameter from a file: a whole number, or nothing (see `descriptions`)."""
    return value if type(value) is int else None


def _sql_name(sa_type: TypeEngine[Any], dialect: sa.Dialect | None) -> str:
    try:
        return str(sa_type.compile(dialect=dialect))
    except Exception:
        return type(sa_type).__name__.upper()


def column_type(sa_type: TypeEngine[Any], dialect: sa.Dialect | None = None) -> ColumnType:
    """The portable type of a reflected column."""
    sql = _sql_name(sa_type, dialect)
    if isinstance(sa_type, sa.Boolean) or (
        isinstance(sa_type, mysql.TINYINT) and getattr(sa_type, "display_width", None) == 1
    ):
        return ColumnType("boolean", sql)
    if isinstance(sa_type, sa.Integer):
        return ColumnType("integer", sql)
    if isinstance(sa_type, sa.Float):
        return ColumnType("float", sql)
    if isinstance(sa_type, sa.Numeric):
        return ColumnType("decimal", sql, precision=sa_type.precision, scale=sa_type.scale)
    if isinstance(sa_type, sa.DateTime):
        return ColumnType("datetime", sql, timezone=bool(sa_type.timezone))
    if isinstance(sa_type, sa.Date):
        return ColumnType("date", sql)
    if isinstance(sa_type, sa.Time):
        return ColumnType("time", sql, timezone=bool(getattr(sa_type, "timezone", False)))
    if isinstance(sa_type, (sa.Interval, postgresql.INTERVAL)):
        return ColumnType("interval", sql)
    if isinstance(sa_type, sa.JSON):
        return ColumnType("json", sql)
    if isinstance(sa_type, sa.Uuid):
        return ColumnType("uuid", sql)
    if isinstance(sa_type, sa.types._Binary):
        return ColumnType("bytes", sql, length=getattr(sa_type, "length", None))
    if isinstance(sa_type, sa.ARRAY):
        return ColumnType("array", sql)
    if isinstance(sa_type, sa.String):
        return ColumnType("string", sql, length=sa_type.length)
    return ColumnType("other", sql)


# -- backup: driver value -> JSON value ----------------------------------------------------


def iso_duration(value: timedelta) -> str:
    """ISO 8601 duration (`P1DT2H3M4.5S`), which PostgreSQL reads back as an interval."""
    days, seconds, micro = value.days, value.seconds, value.microseconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    frac = f"{secs}.{micro:06d}".rstrip("0").rstrip(".") if micro else str(secs)
    return f"P{days}DT{hours}H{minutes}M{frac}S"


def clock_time(value: timedelta) -> str:
    """MySQL hands TIME columns out as timedelta; write them as `HH:MM:SS[.ffffff]`."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{text}.{fraction:06d}" if fraction else text


def b64(value: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(value).decode("ascii")


def json_default(value: Any) -> Any:
    """orjson's fallback for values it does not serialise natively."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b64(value)
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _nonfinite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _decimal_text(value: Any) -> Any:
    if isinstance(value, (Decimal, int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _stored_bool(value: Any) -> Any:
    return bool(value) if type(value) is int and value in (0, 1) else value


def _stored_json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _bytes_text(value: Any) -> Any:
    return b64(value) if isinstance(value, (bytes, bytearray, memoryview)) else value


def _time_text(value: Any) -> Any:
    return clock_time(value) if isinstance(value, timedelta) else value


def _interval_text(value: Any) -> Any:
    return iso_duration(value) if isinstance(value, timedelta) else value


_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "float": _nonfinite,
    "decimal": _decimal_text,
    "boolean": _stored_bool,
    "json": _stored_json,
    "bytes": _bytes_text,
    "time": _time_text,
    "interval": _interval_text,
}


def backup_encoder(ctype: ColumnType, dialect: str) -> Callable[[Any], Any] | None:
    """The per-value transform for a column on backup, or None when orjson needs none."""
    if ctype.kind == "json" and dialect == "postgresql":
        return None  # psycopg already decodes json/jsonb
    if ctype.kind == "boolean" and dialect == "postgresql":
        return None
    return _ENCODERS.get(ctype.kind)


# -- restore: JSON value -> driver value ---------------------------------------------------


class BadValue(ValueError):
    """A value that does not fit its column; the message is the reason shown to users."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(what: str, value: Any) -> BadValue:
    return BadValue(f"expected {what}, got {_describe(value)}")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _expected("an integer", value)


_FLOAT_WORDS = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf}


def _as_float(value: Any) -> float:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _FLOAT_WORDS:
            return _FLOAT_WORDS[word]
        try:
            return float(word)
        except ValueError:
            pass
    raise _expected("a number", value)


def _check_decimal(value: Any) -> Any:
    if type(value) is str:
        try:
            Decimal(value)
        except InvalidOperation:
            raise _expected("a decimal number", value) from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _expected("a decimal number", value)
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


_TRUE = {"true", "t", "1", "yes", "y", "on"}
_FALSE = {"false", "f", "0", "no", "n", "off"}


def _as_bool(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _expected("true or false", value)


def _parse_datetime(value: Any) -> datetime:
    if type(value) is not str:
        raise _expected("an ISO 8601 datetime", value)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _expected("an ISO 8601 datetime", value) from None


def _parse_date(value: Any) -> date:
    if type(value) is not str:
        raise _expected("a date (YYYY-MM-DD)", value)
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _expected("a date (YYYY-MM-DD)", value) from None
    if moment.time() != time(0):
        raise _expected("a date (YYYY-MM-DD)", value)
    return moment.date()


def _parse_time(value: Any) -> time:
    if type(value) is not str:
        raise _expected("a time (HH:MM:SS)", value)
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise _expected("a time (HH:MM:SS)", value) from None


def _utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _datetime_writer(dialect: str, timezone: bool) -> Callable[[Any], Any]:
    if dialect == "postgresql":
        if timezone:
            return lambda v: _parse_datetime(v).isoformat()
        return lambda v: _utc_naive(_parse_datetime(v)).isoformat()
    if dialect == "sqlite":

        def sqlite_datetime(v: Any) -> Any:
            moment = _parse_datetime(v)
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC)
            return moment.isoformat(" ", "microseconds")

        return sqlite_datetime
    return lambda v: _utc_naive(_parse_datetime(v)).isoformat(" ", "microseconds")


_MYSQL_DURATION = re.compile(r"-?\d{1,3}:[0-5]\d:[0-5]\d(\.\d{1,6})?").fullmatch


def _utc_time(moment: time) -> time:
    """A time with a fixed offset, as the UTC time of day (engines without time zones)."""
    offset = moment.utcoffset()
    if offset is None:
        return moment
    return (datetime.combine(date(2000, 1, 1), moment.replace(tzinfo=None)) - offset).time()


def _time_writer(dialect: str) -> Callable[[Any], Any]:
    if dialect == "postgresql":
        return lambda v: _parse_time(v).isoformat()
    if dialect == "mysql":

        def mysql_time(v: Any) -> Any:
            # MySQL TIME is also a duration (-838:59:59 to 838:59:59), as backups of it hold.
            if type(v) is str and _MYSQL_DURATION(v):
                return v
            return _utc_time(_parse_time(v)).isoformat("microseconds")

        return mysql_time
    return lambda v: _utc_time(_parse_time(v)).isoformat("microseconds")


def _from_base64(value: Any) -> bytes:
    if type(value) is not str:
        raise _expected("base64 text", value)
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error:
        raise _expected("base64 text", value) from None


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _json_passthrough(value: Any) -> Any:
    return value if isinstance(value, str) else _json_text(value)


def _other(value: Any) -> Any:
    return _json_text(value) if isinstance(value, (dict, list)) else value


def _epoch_or(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite apps sometimes store times as epoch numbers; keep those as they are."""

    def convert(value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        return fallback(value)

    return convert


@dataclass(frozen=True)
class Decoder:
    """How one target column takes values from the backup.

    `accepted` are the Python types (besides None) handled by `convert` without complaint;
    `convert` (None = identity) runs on every non-None value of a column whose types are all
    accepted; `lenient` converts anything else or raises BadValue with the reason.
    """

    accepted: frozenset[type]
    convert: Callable[[Any], Any] | None = None
    lenient: Callable[[Any], Any] | None = None
    any_type: bool = field(default=False)
    column: Callable[[Sequence[Any]], Sequence[Any]] | None = None
    """Optional whole-column shortcut for the common case; raises to fall back."""

    def decode_column(self, values: Sequence[Any]) -> tuple[Sequence[Any], dict[int, str]]:
        """Convert one column of a batch; bad values come back as {row index: reason}."""
        if self.any_type or set(map(type, values)) - {NoneType} <= self.accepted:
            if self.column is not None:
                try:
                    return self.column(values), {}
                except (ValueError, TypeError, OverflowError, ArithmeticError):
                    pass
            convert = self.convert
            if convert is None:
                return values, {}
            try:
                return [convert(v) if v is not None else None for v in values], {}
            except (ValueError, TypeError, OverflowError, ArithmeticError):
                pass  # name the culprits below
        out: list[Any] = []
        errors: dict[int, str] = {}
        for i, value in enumerate(values):
            try:
                out.append(self.convert_one(value))
            except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
                errors[i] = str(exc) if isinstance(exc, BadValue) else f"bad value: {exc}"
                out.append(None)
        return out, errors

    def convert_one(self, value: Any) -> Any:
        if value is None:
            return None
        if type(value) in self.accepted or self.any_type:
            return self.convert(value) if self.convert else value
        if self.lenient is None:
            raise BadValue(f"unexpected value {_describe(value)}")
        return self.lenient(value)


def _decoder(
    accepted: set[type],
    convert: Callable[[Any], Any] | None = None,
    lenient: Callable[[Any], Any] | None = None,
) -> Decoder:
    return Decoder(frozenset(accepted), convert, lenient)


def _present(values: Sequence[Any]) -> list[Any]:
    return [v for v in values if v is not None] if None in values else list(values)


def _valid_dates(values: Sequence[Any]) -> Sequence[Any]:
    """Dates already written as YYYY-MM-DD pass unchanged."""
    present = _present(values)
    list(map(date.fromisoformat, present))
    if any(len(v) != 10 for v in present):
        raise ValueError("not in the plain form")
    return values


_SQLALCHEMY_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}").fullmatch
_TZINFO = attrgetter("tzinfo")


def _datetime_column(dialect: str, timezone: bool) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Datetimes that are already in the form the target stores pass unchanged (checked)."""

    def check(values: Sequence[Any]) -> Sequence[Any]:
        present = _present(values)
        if dialect == "sqlite" and not all(map(_SQLALCHEMY_DATETIME, present)):
            raise ValueError("not in SQLAlchemy's storage form")
        parsed = list(map(datetime.fromisoformat, present))
        if dialect == "postgresql" and timezone:
            return values  # PostgreSQL reads every ISO 8601 form itself
        if any(map(_TZINFO, parsed)):
            raise ValueError("offsets to convert")
        return values

    return check


def _decimal_column(values: Sequence[Any]) -> Sequence[Any]:
    """Decimal strings are checked (at C speed) and passed on as text."""
    present = _present(values)
    if not all(type(v) is str for v in present):
        raise ValueError("numbers to check one by one")
    list(map(Decimal, present))
    return values


def restore_decoder(target: ColumnType, dialect: str, source: ColumnType | None) -> Decoder:
    """How a target column of `dialect` takes values written from a `source` column."""
    kind = target.kind
    if kind == "integer":
        return _decoder({int}, None, _as_int)
    if kind == "float":
        return _decoder({float, int}, None, _as_float)
    if kind == "decimal":
        return Decoder(frozenset({str, int, float}), _check_decimal, _check_decimal, column=_decimal_column)
    if kind == "string":
        return _decoder({str}, None, _as_text)
    if kind == "boolean":
        return _decoder({bool}, None, _as_bool)
    if kind == "date":
        writer = lambda v: _parse_date(v).isoformat()  # noqa: E731
        lenient = _epoch_or(writer) if dialect == "sqlite" else writer
        return Decoder(frozenset({str}), writer, lenient, column=_valid_dates)
    if kind == "time":
        writer = _time_writer(dialect)
        return _decoder({str}, writer, writer)
    if kind == "datetime":
        writer = _datetime_writer(dialect, target.timezone)
        lenient = _epoch_or(writer) if dialect == "sqlite" else writer
        column = _datetime_column(dialect, target.timezone)
        return Decoder(frozenset({str}), writer, lenient, column=column)
    if kind == "bytes":
        return _decoder({str}, _from_base64, _from_base64)
    if kind == "json":
        text_source = source is not None and source.kind in ("string", "other")
        convert = _json_passthrough if text_source else _json_text
        return Decoder(frozenset(), convert, convert, any_type=True)
    if kind in ("uuid", "interval"):
        return _decoder({str}, None, _as_text)
    if kind == "array":
        return _decoder({list}, None, None)
    return Decoder(frozenset(), _other, _other, any_type=True)
