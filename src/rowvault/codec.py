"""Column types, and how values cross between a database driver and the backup file.

Every column gets a portable *kind* (integer, decimal, datetime, bytes, json, ...). On backup,
`encoding.backup_encoder` turns what the driver hands out into a JSON value: datetimes as ISO 8601,
Decimal as a string, bytes as base64, JSON columns as JSON. On restore, `restore_decoder`
turns a JSON value into what the target's driver stores faithfully; it checks each value
against the target column's kind, so a bad value is a record error with a reason, not a
corrupt row (SQLite would store "abc" in an INTEGER column).

Decoding works a column at a time: a batch's column is first checked with `set(map(type,
values))`, which runs at C speed; only a column that holds an unexpected type is walked value
by value to name the bad records.

Two marks carry a value as the database stored it, where the column's kind would read it
differently: `{"$stored": text or number}` - a JSON column's text kept verbatim (not JSON, or
numbers a double would round), a SQLite value that does not fit its declared type - and
`{"$base64": "..."}`, a blob in a SQLite column that is not BLOB. A JSON document of that
shape is itself written as `$stored` text, so the marks are unambiguous; they are read only
from files whose columns are described.

A SQLite column's declared type is only an affinity (`ColumnType.affinity`): SQLite keeps
`2` in a BOOLEAN, `'2024-1-1'` in a DATE. Restored into SQLite, such values come back as they
were stored; elsewhere the target's type decides, and a value it cannot hold is a record error.
"""

from __future__ import annotations

import binascii
import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeEngine

from .typenames import TYPELESS

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
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
STORED_MARK = "$stored"
"""`{"$stored": text or number}`: a value as the database stored it, not as its kind reads."""
BASE64_MARK = "$base64"
"""`{"$base64": text}`: a blob in a column whose kind is not bytes (SQLite)."""
_SCALARS = (str, int, float)


def _mark(value: Any) -> tuple[str, Any] | None:
    """`(mark, what it holds)` for a marked value, else None."""
    if type(value) is dict and len(value) == 1:
        stored = value.get(STORED_MARK)
        if type(stored) in _SCALARS:
            return STORED_MARK, stored
        blob = value.get(BASE64_MARK)
        if type(blob) is str:
            return BASE64_MARK, blob
    return None


@dataclass(frozen=True)
class ColumnType:
    """A column's type as rowvault carries it between databases."""

    kind: Kind
    sql: str = ""
    timezone: bool = False
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    affinity: bool = False
    """SQLite: the declared type is only an affinity, the column holds values of any kind."""

    @property
    def typeless(self) -> bool:
        return self.kind == "other" and self.sql == TYPELESS

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "sqlType": self.sql}
        if self.timezone:
            data["timezone"] = True
        if self.affinity:
            data["affinity"] = True
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
            affinity=data.get("affinity") is True,
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
    ctype = _portable_type(sa_type, dialect)
    if dialect is None or dialect.name != "sqlite":
        return ctype
    if isinstance(sa_type, sa.types.NullType):
        return ColumnType("other", TYPELESS, affinity=True)
    return replace(ctype, affinity=True)


def _portable_type(sa_type: TypeEngine[Any], dialect: sa.Dialect | None) -> ColumnType:
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
    return _json_text(value)


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
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer past 64 bits, nesting past orjson's 255 levels
        return exact_json(value)


def exact_json(value: Any) -> str:
    """JSON text of what orjson cannot write (every digit of a big integer, deep nesting);
    a ValueError when even the json module cannot (nesting past Python's own limit)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise ValueError("nested too deeply to be written") from None


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


# -- decimals that the target would round -------------------------------------------------


def _dropped_digits(value: Decimal, places: int) -> bool:
    """Whether `value` has non-zero digits past `places` decimal places."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= -places:
        return False  # NaN, Infinity, or few enough places
    extra = -exponent - places
    return any(digits[-extra:])


def _fits_sqlite(value: Decimal) -> bool:
    """SQLite's NUMERIC stores a 64-bit integer or a double."""
    if not value.is_finite():
        return True  # stored as the text it is
    if value == value.to_integral_value() and _INT64_MIN < value < 2**63:
        return True
    return Decimal(repr(float(value))) == value


_PLAIN_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?").fullmatch


@functools.cache
def _few_places(places: int) -> Callable[[str], re.Match[str] | None]:
    return re.compile(rf"-?\d*(?:\.\d{{0,{places}}})?").fullmatch


@dataclass(frozen=True)
class _DecimalFit:
    """Decimals checked against what the target column keeps, so that nothing is rounded
    silently: PostgreSQL and MariaDB round extra places to the column's scale, SQLite keeps
    about 15 digits. `places` None: no scale to keep (SQLite, an unconstrained NUMERIC)."""

    dialect: str
    sql: str
    places: int | None

    def check(self, value: Any) -> Any:
        _check_decimal(value)
        number = Decimal(repr(value)) if type(value) is float else Decimal(value)
        if self.dialect == "sqlite" and not _fits_sqlite(number):
            raise BadValue(
                f"{_describe(value)} has more digits than SQLite keeps (its NUMERIC holds a "
                "64-bit integer or a double of about 15 digits): it would be rounded"
            )
        if self.places is not None and _dropped_digits(number, self.places):
            raise BadValue(
                f"{_describe(value)} has more decimal places than the column's {self.sql} keeps "
                f"({self.places}): it would be rounded"
            )
        if self.dialect == "sqlite" and number.is_finite() and number != number.to_integral_value():
            return float(number)  # SQLite's own reading of the text is not correctly rounded
        return value

    def column(self, values: Sequence[Any]) -> Sequence[Any]:
        """Text that is short (SQLite) or has few places (the others) passes at C speed."""
        _decimal_column(values)
        present = _present(values)
        if self.dialect == "sqlite":
            if present and max(map(len, present)) > 15:
                raise ValueError("long decimals to check one by one")
            if not all(map(_PLAIN_NUMBER, present)):
                raise ValueError("other spellings (NaN, Infinity, spaces) to check one by one")
            # as doubles: SQLite 3.40 reads '2.81E-32' as 2.8099999999999997e-32; at most 15
            # characters are at most 15 digits, which a double holds exactly when integral
            return [None if v is None else float(v) for v in values]
        elif self.places is not None and not all(map(_few_places(self.places), present)):
            raise ValueError("decimals to check one by one")
        return values


def decimal_places(target: ColumnType, dialect: str) -> tuple[int | None, str]:
    """The decimal places a target column keeps (None: no scale to keep) and its SQL type."""
    places, sql = target.scale, target.sql or "NUMERIC"
    if dialect == "sqlite":
        places = None  # an affinity: no scale kept, but no more digits than a double either
    elif dialect == "mysql" and (target.precision is None or target.affinity):
        places, sql = 30, "DECIMAL(65, 30)"  # what schema.sa_type creates
    elif target.affinity:
        places = None  # created from a SQLite description: an unconstrained NUMERIC
    return places, sql


def _decimal_decoder(target: ColumnType, dialect: str) -> Decoder:
    places, sql = decimal_places(target, dialect)
    if places is None and dialect != "sqlite":
        return Decoder(frozenset({str, int, float}), _check_decimal, _check_decimal, column=_decimal_column)
    fit = _DecimalFit(dialect, sql, places)
    return Decoder(frozenset({str, int, float}), fit.check, fit.check, column=fit.column)


# -- marked values -------------------------------------------------------------------------


def _typeless_text(value: Any) -> Any:
    """A typeless SQLite column's value in the text column made for it on another engine:
    numbers as their text, a blob as its base64."""
    return value if type(value) is str else _as_text(value)


def _reading_marks(decoder: Decoder, target: ColumnType, *, as_stored: bool) -> Decoder:
    """`decoder`, taking marked values too. `as_stored` (SQLite from SQLite): a value comes
    back exactly as it was stored. Elsewhere a `$stored` value is read by the column's kind
    (text into bytes as its UTF-8), and a blob goes only into bytes, or text as its base64."""
    kind = target.kind
    text_like = kind == "string" or target.typeless

    def held(mark: str, value: Any) -> Any:
        if mark == BASE64_MARK:
            if as_stored or kind == "bytes":
                return _from_base64(value)
            if text_like:
                return value
            raise BadValue(f"a binary value (a SQLite BLOB) cannot be stored in a column of {kind} values")
        if as_stored:
            return value
        if kind == "json":  # its text as it was (a number: as JSON writes it)
            return value if type(value) is str else _json_text(value)
        if kind == "bytes" and type(value) is str:
            return value.encode()
        return decoder.convert_one(value)

    def lenient(value: Any) -> Any:
        marked = _mark(value)
        if marked is not None:
            return held(*marked)
        if decoder.lenient is None:
            raise BadValue(f"unexpected value {_describe(value)}")
        return decoder.lenient(value)

    def any_value(value: Any) -> Any:
        marked = _mark(value)
        if marked is None:
            return decoder.convert(value) if decoder.convert else value
        return held(*marked)

    if decoder.any_type:
        return replace(decoder, convert=any_value, lenient=any_value)
    return replace(decoder, lenient=lenient)


def _kept(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Check that a value reads as the kind, and keep it as it was written."""

    def keep(value: Any) -> Any:
        parse(value)
        return value

    return keep


def _kept_column(parse: Callable[[str], Any]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    def check(values: Sequence[Any]) -> Sequence[Any]:
        list(map(parse, _present(values)))
        return values

    return check


_TEMPORAL: dict[str, tuple[Callable[[Any], Any], Callable[[str], Any]]] = {
    "date": (lambda v: _parse_date(v), date.fromisoformat),
    "time": (lambda v: _parse_time(v), time.fromisoformat),
    "datetime": (lambda v: _parse_datetime(v), datetime.fromisoformat),
}


def _sqlite_kept(target: ColumnType, source: ColumnType) -> Decoder:
    """Into SQLite from SQLite: dates and times are checked but kept as the text they were
    (an offset stays an offset); other kinds are read as usual."""
    if target.kind not in _TEMPORAL:
        return _kind_decoder(target, "sqlite", source)
    parse, fast = _TEMPORAL[target.kind]
    keep = _kept(parse)
    lenient = keep if target.kind == "time" else _epoch_or(keep)
    return Decoder(frozenset({str}), keep, lenient, column=_kept_column(fast))


# -- restore: the decoder of a column ------------------------------------------------------


def restore_decoder(target: ColumnType, dialect: str, source: ColumnType | None) -> Decoder:
    """How a target column of `dialect` takes values written from a `source` column (None:
    the file does not describe it, and marks are not read)."""
    if source is None:
        return _kind_decoder(target, dialect, None)
    if dialect == "sqlite" and source.affinity:
        return _reading_marks(_sqlite_kept(target, source), target, as_stored=True)
    return _reading_marks(_kind_decoder(target, dialect, source), target, as_stored=False)


def _kind_decoder(target: ColumnType, dialect: str, source: ColumnType | None) -> Decoder:
    kind = target.kind
    if kind == "integer":
        return _decoder({int}, None, _as_int)
    if kind == "float":
        return _decoder({float, int}, None, _as_float)
    if kind == "decimal":
        return _decimal_decoder(target, dialect)
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
    if target.typeless and dialect != "sqlite":
        return Decoder(frozenset({str}), None, _typeless_text)
    return Decoder(frozenset(), _other, _other, any_type=True)
