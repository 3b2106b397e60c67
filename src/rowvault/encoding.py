"""Backup's half of the codec: what a driver hands out becomes a JSON value of the file.

Datetimes as ISO 8601, Decimal as a string, bytes as base64, JSON columns as JSON, and the
`$stored` / `$base64` marks (see `codec`) for values the column's kind would read
differently. Each column gets an encoder, and where a whole batch can be checked at C speed
first, a screen that lets the per-value encoder be skipped.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from .codec import (
    _INT64_MIN,
    _UINT64_MAX,
    BASE64_MARK,
    STORED_MARK,
    ColumnType,
    _mark,
    _parse_date,
    _parse_datetime,
    _parse_time,
)

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


def _numbers_table() -> bytes:
    table = bytearray(b" " * 256)
    table[ord("0") : ord("9") + 1] = b"0" * 10
    table[ord(".")] = table[ord("0")]
    table[ord("e")] = table[ord("E")] = ord("e")
    table[ord("-")] = ord("-")
    return bytes(table)


_NUMBERS = _numbers_table()
"""Digits and points to 0, exponents to e, minus kept, all else a space: for `_long_numbers`."""


def _long_numbers(raw: bytes) -> bool:
    """Whether a JSON text may hold a number that a double (or orjson's 64-bit integers) would
    change: 16 digits and points in a row, or an exponent below -99. One translate and two
    searches, at C speed; only such texts get the exact check."""
    shape = raw.translate(_NUMBERS)
    return b"0000000000000000" in shape or b"e-000" in shape


class _Inexact(Exception):
    """A JSON number that orjson would not read back as written."""


def _exact_int(text: str) -> int:
    number = int(text)
    if not _INT64_MIN <= number <= _UINT64_MAX:
        raise _Inexact  # orjson reads it as a double
    return number


def _exact_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number) or Decimal(repr(number)) != Decimal(text):
        raise _Inexact
    return number


def _rounds_numbers(text: str | bytes) -> bool:
    """Whether a JSON text with long numbers (`_long_numbers`) holds one that orjson would
    change (its integers are 64-bit, its other numbers doubles)."""
    try:
        json.loads(text, parse_int=_exact_int, parse_float=_exact_float)
    except (_Inexact, ValueError):
        return True
    return False


def _text_mark(text: str | bytes) -> dict[str, str]:
    if isinstance(text, str):
        return {STORED_MARK: text}
    try:
        return {STORED_MARK: text.decode("utf-8")}
    except UnicodeDecodeError:
        return {BASE64_MARK: b64(text)}


def stored_json(text: str | bytes) -> Any:
    """A JSON column's stored text as the backup carries it: the document, or the text itself
    (`$stored`) when reading it as JSON would change it - it is not JSON, or its numbers do not
    fit a double (`12345678901234567890123`, `1e400`), or it looks like a mark - or when the
    document could not be written in a record (nested past orjson's depth)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _text_mark(text)
    if type(value) is dict and len(value) == 1 and _mark(value) is not None:
        return _text_mark(text)
    shape = (text.encode() if isinstance(text, str) else text).translate(_NUMBERS)  # _long_numbers
    if (b"0000000000000000" in shape or b"e-000" in shape) and _rounds_numbers(text):
        return _text_mark(text)
    if _too_deep(text, value):
        return _text_mark(text)
    return value


MAX_DEPTH = 253
"""The deepest document orjson writes inside a record (measured: 254 levels fail)."""


def _too_deep(text: str | bytes, value: Any) -> bool:
    """Whether the document nests deeper than a record can hold: only a text with that many
    brackets can, and only then is it written to find out."""
    if len(text) <= 2 * MAX_DEPTH:
        return False
    raw = text.encode() if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    try:
        orjson.dumps([value])
    except orjson.JSONEncodeError:
        return True
    return False


def _stored_json(value: Any) -> Any:
    return stored_json(value) if isinstance(value, (str, bytes)) else value


def _short_json(value: Any) -> Any:
    """`stored_json` for a text known to hold no long number (see `_json_screen`)."""
    if type(value) is not str:
        return _stored_json(value)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {STORED_MARK: value}
    if (type(doc) is dict and len(doc) == 1 and _mark(doc) is not None) or _too_deep(value, doc):
        return {STORED_MARK: value}
    return doc


def _json_screen(values: Sequence[Any]) -> bool:
    """Whether no JSON text of a batch's column holds a long number: one search of them all."""
    texts = [v for v in values if v is not None]
    try:
        return not _long_numbers("\x00".join(texts).encode())
    except (TypeError, UnicodeError):  # bytes among them, or text that is not UTF-8
        return False


def _bytes_text(value: Any) -> Any:
    return b64(value) if isinstance(value, (bytes, bytearray, memoryview)) else value


def _time_text(value: Any) -> Any:
    """MySQL hands out a TIME as a timedelta. A `time` is written by rowvault too: orjson 3.13
    drops the leading zero of 10,000-99,999 microseconds (`00:00:00.01` -> "00:00:00.10000")."""
    if isinstance(value, timedelta):
        return clock_time(value)
    return value.isoformat() if isinstance(value, time) else value


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


# -- backup from SQLite: values that do not fit their column's declared type ---------------

_BLOB = (bytes, bytearray, memoryview)  # left to orjson's fallback, `_sqlite_default`


def _sqlite_integer(value: Any) -> Any:
    return value if type(value) is int or isinstance(value, _BLOB) else {STORED_MARK: value}


def _sqlite_float(value: Any) -> Any:
    return {STORED_MARK: value} if type(value) is str else _nonfinite(value)


def _sqlite_decimal(value: Any) -> Any:
    if type(value) is str:
        try:
            Decimal(value)
        except InvalidOperation:
            return {STORED_MARK: value}
        return value
    return _decimal_text(value)


def _sqlite_bool(value: Any) -> Any:
    if type(value) is int and value in (0, 1):
        return bool(value)
    return value if isinstance(value, _BLOB) else {STORED_MARK: value}


def _sqlite_bytes(value: Any) -> Any:
    return b64(value) if isinstance(value, _BLOB) else {STORED_MARK: value}


def _sqlite_temporal(parse: Callable[[Any], Any], epoch: bool) -> Callable[[Any], Any]:
    """Text that restore reads as the kind (and epoch numbers, for dates and datetimes) stays
    as it is; anything else is marked as stored."""

    def encode(value: Any) -> Any:
        if isinstance(value, _BLOB) or (epoch and type(value) in (int, float)):
            return value
        try:
            parse(value)
        except ValueError:
            return {STORED_MARK: value}
        return value

    return encode


_SQLITE_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "integer": _sqlite_integer,
    "float": _sqlite_float,
    "decimal": _sqlite_decimal,
    "boolean": _sqlite_bool,
    "bytes": _sqlite_bytes,
    "date": _sqlite_temporal(lambda v: _parse_date(v), epoch=True),
    "time": _sqlite_temporal(lambda v: _parse_time(v), epoch=False),
    "datetime": _sqlite_temporal(lambda v: _parse_datetime(v), epoch=True),
    "json": _stored_json,
}


def _all_ints(values: Sequence[Any]) -> bool:
    try:
        return type(sum(filter(None, values))) is int  # a float, text or blob would show
    except TypeError:
        return False


def _all_finite(values: Sequence[Any]) -> bool:
    try:
        return math.isfinite(math.fsum(filter(None, values)))
    except (TypeError, ValueError, OverflowError):
        return False


def _no_text(values: Sequence[Any]) -> bool:
    return str not in set(map(type, values))


def _all_parse(parse: Callable[[str], Any]) -> Callable[[Sequence[Any]], bool]:
    def check(values: Sequence[Any]) -> bool:
        try:
            return all(map(parse, filter(None, values)))
        except (TypeError, ValueError):
            return False

    return check


Screen = tuple[Callable[[Sequence[Any]], bool], Callable[[Any], Any] | None]
"""A check, at C speed, of a batch's column, and the lighter encoder (None: none at all) that
does for a column that passes it."""
_SQLITE_SCREENS: dict[str, Screen] = {
    "integer": (_all_ints, None),
    "float": (_all_finite, None),
    "date": (_all_parse(date.fromisoformat), None),
    "time": (_all_parse(time.fromisoformat), None),
    "datetime": (_all_parse(datetime.fromisoformat), None),
    "decimal": (_no_text, _decimal_text),
    "json": (_json_screen, _short_json),
}


def backup_encoder(ctype: ColumnType, dialect: str) -> Callable[[Any], Any] | None:
    """The per-value transform for a column on backup, or None when orjson needs none."""
    if dialect == "sqlite" and ctype.affinity:
        return _SQLITE_ENCODERS.get(ctype.kind)
    if ctype.kind == "json" and dialect == "postgresql":
        return None  # psycopg decodes json/jsonb with `stored_json`
    if ctype.kind == "boolean" and dialect == "postgresql":
        return None
    return _ENCODERS.get(ctype.kind)


def backup_screen(ctype: ColumnType, dialect: str) -> Screen | None:
    """How a batch's column may skip `backup_encoder`'s work: SQLite values that all fit their
    declared type need none, JSON texts without long numbers only orjson. None: no screen."""
    if dialect == "sqlite" and ctype.affinity:
        return _SQLITE_SCREENS.get(ctype.kind)
    return (_json_screen, _short_json) if ctype.kind == "json" and dialect != "postgresql" else None


def _sqlite_default(value: Any) -> Any:
    if isinstance(value, _BLOB):
        return {BASE64_MARK: b64(value)}  # a blob in a column that is not BLOB
    return json_default(value)


def backup_default(dialect: str) -> Callable[[Any], Any]:
    """orjson's fallback for a backup of `dialect`: on SQLite any column may hold a blob."""
    return _sqlite_default if dialect == "sqlite" else json_default
