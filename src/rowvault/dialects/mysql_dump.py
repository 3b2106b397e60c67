"""MariaDB's (and MySQL's) fast backup path: each record's line is built by the server.

One SELECT per table concatenates the line (`sql_lines`) from each value's text, written
the row path's way only where the server's text provably is it:

  integers as they are; booleans (TINYINT(1): 0 and 1 as false and true, other numbers as
  they are); text through `JSON_QUOTE` (its escapes are orjson's but for the hex digits of
  `\\u000B`-style escapes, which it writes in capitals: turned to small letters here,
  `fix_escapes`); binary strings as base64; decimals with at most six decimals, or else
  not below 1e-6 (`str(Decimal)` keeps those); FLOAT and DOUBLE without a fixed number of
  decimals within 1e-4..1e5 (FLOAT: six digits) and 1e-4..1e15 (DOUBLE: its shortest
  digits), written without an exponent, as orjson does (`.0` added to whole numbers);
  dates as they are (PyMySQL reads a date it cannot make a `date` of as its text, which is
  what the row path then writes); datetimes and timestamps of real calendar days (the
  session's UTC), times from 00:00:00 (microseconds only when there are some, six digits).
  JSON documents are fetched beside the line and written by the row path's own encoder
  (`sql_lines`).

A row holding any other value comes as the array of its values' bytes (base64), which
PyMySQL's own converters for the result's fields read as the row path's driver would, and
the row path encodes (`sql_lines.LineBuilder`). A table with a column of any other type
(BIT, YEAR, geometry, sets of text longer than the server's packet allows...) is read by
the row path whole, as is every table when the server does not take backslash escapes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import FLAG

from ..backuprows import RowEncoder
from ..schema import TableSpec
from . import sql_lines
from .mysql_rows import PacketRows

FETCH_ROWS = 5000
_INTS = frozenset({1, 2, 3, 8, 9})
_STRINGS = frozenset({15, 252, 253, 254})
_DECIMALS = frozenset({0, 246})
_FREE_DECIMALS = 31
"""What the server reports as the decimals of a FLOAT or DOUBLE without (M, D)."""
_BINARY = 63
_GROWTH = 6
"""How much longer a text can get as JSON (a control character becomes `\\u001f`)."""
_BOUNDED = 1 << 16
"""Declared lengths (bytes) up to this are taken as the value's longest; longer columns
(MEDIUMTEXT, LONGTEXT, LONGBLOB: up to 16 MB and 4 GB) are measured (`longest`)."""
_UPPER_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00([01][A-F])")


@dataclass(frozen=True)
class Field:
    """What the line of a column's value depends on: its kind, and the result's field."""

    kind: str
    type_code: int
    charset: int
    decimals: int
    length: int
    zerofill: bool = False


def _float(x: str, field: Field) -> tuple[str, str] | None:
    if field.decimals != _FREE_DECIMALS:
        return None
    if field.type_code == 5:  # DOUBLE: its shortest digits
        text = f"IF({x} = FLOOR({x}), CONCAT({x}, '.0'), CONCAT({x}))"
        return text, f"(ABS({x}) >= 0.0001 AND ABS({x}) < 1e15 OR {x} = 0)"
    if field.type_code == 4:  # FLOAT: six digits, so whole or not is told by its text
        text = f"IF(LOCATE('.', CONCAT({x})) > 0, CONCAT({x}), CONCAT({x}, '.0'))"
        return text, f"(ABS({x}) >= 0.0001 AND ABS({x}) < 1e5 OR {x} = 0)"
    return None


def _clock(x: str, shape: str) -> str:
    return f"IF(MICROSECOND({x}) = 0, DATE_FORMAT({x}, '{shape}'), DATE_FORMAT({x}, '{shape}.%f'))"


def value_sql(x: str, field: Field) -> tuple[str, str | None] | None:
    """(text, ok) of column `x`'s value: the SQL of its line text, right where `ok` (None:
    always) holds; None when this path does not write the column."""
    kind, code, binary = field.kind, field.type_code, field.charset == _BINARY
    if field.zerofill:  # its text is padded with zeros, which the driver's number drops
        return None
    if kind == "integer" and code in _INTS:
        return f"CONCAT({x})", None
    if kind == "boolean" and code == 1:
        return f"CASE {x} WHEN 0 THEN 'false' WHEN 1 THEN 'true' ELSE CONCAT({x}) END", None
    if kind in ("string", "uuid") and code in _STRINGS and not binary:
        return f"JSON_QUOTE(CONVERT({x} USING utf8mb4))", None
    if kind == "bytes" and code in _STRINGS and binary:
        return f"CONCAT('\"', REPLACE(TO_BASE64({x}), CHAR(10), ''), '\"')", None
    if kind == "decimal" and code in _DECIMALS:
        return f"CONCAT('\"', {x}, '\"')", None if field.decimals <= 6 else f"ABS({x}) >= 0.000001"
    if kind == "float" and code in (4, 5):
        return _float(x, field)
    if kind == "date" and code in (10, 14):
        return f"CONCAT('\"', {x}, '\"')", None
    if kind == "datetime" and code in (7, 12):
        day = f"DAYOFMONTH({x}) BETWEEN 1 AND DAYOFMONTH(LAST_DAY({x}))"
        ok = f"({x} >= '0001-01-01' AND MONTH({x}) > 0 AND {day})"
        return f"CONCAT('\"', {_clock(x, '%Y-%m-%dT%H:%i:%s')}, '\"')", ok
    if kind == "time" and code == 11:
        text = f"IF(MICROSECOND({x}) = 0, TIME_FORMAT({x}, '%H:%i:%s'), TIME_FORMAT({x}, '%H:%i:%s.%f'))"
        return f"CONCAT('\"', {text}, '\"')", f"{x} >= TIME'00:00:00'"
    return None


def _is_document(field: Field) -> bool:
    """A JSON column: fetched as it is, read by the driver as the row path's is."""
    return field.kind == "json"


def line_sql(
    spec: TableSpec,
    fields: Sequence[Field],
    select_sql: str,
    *,
    quote: Callable[[str], str],
    literal: Callable[[str], str],
    packet: int,
    longest: Callable[[list[str]], int] = lambda refs: 1 << 62,
) -> str | None:
    """The SELECT of each row's line (see the module docstring) in pieces, a JSON document
    between two; None when a column has a type this path does not write, or a line might
    not fit in the server's packet (CONCAT would give NULL). The values of columns declared
    longer than `_BOUNDED` are measured: `longest(refs)`, the most bytes they hold in one
    row (in the backup's snapshot, the very rows the SELECT reads)."""
    refs = [f"rv_rows.{quote(c.name)}" for c in spec.columns]
    pieces: list[list[tuple[str, str]]] = [[]]
    docs: list[str] = []
    oks: list[str] = []
    texts: list[str] = []
    unbounded: list[str] = []
    size = 0
    for col, field, x in zip(spec.columns, fields, refs, strict=True):
        if _is_document(field):
            pieces[-1].append((col.name, ""))
            pieces.append([])
            docs.append(x)
            texts.append("NULL")
            continue
        value = value_sql(x, field)
        if value is None:
            return None
        if field.length > _BOUNDED:
            unbounded.append(x)
            size += 64
        else:
            size += field.length * _GROWTH + 64
        pieces[-1].append((col.name, f"IFNULL({value[0]}, 'null')"))
        if value[1] is not None:
            oks.append(f"({x} IS NULL OR {value[1]})")
        utf8 = (
            f"CONVERT({x} USING utf8mb4)" if field.type_code in _STRINGS and field.charset != _BINARY else x
        )
        texts.append(f"TO_BASE64({utf8})")
    if unbounded and 2 * size <= packet:
        size += _GROWTH * longest(unbounded)
    if 2 * size > packet:
        return None
    parts = [f"CONCAT({', '.join(args)})" for args in sql_lines.concat_parts(pieces, literal)]
    if oks:
        parts[0] = f"IF({' AND '.join(oks)}, {parts[0]}, JSON_ARRAY({', '.join(texts)}))"
    columns = [f"CAST({part} AS BINARY)" for part in parts]
    for i, doc in enumerate(docs):
        columns.insert(2 * i + 1, doc)
    return f"SELECT {', '.join(columns)} FROM ({select_sql}) AS rv_rows"


def fix_escapes(batch: list[bytes]) -> list[bytes]:
    """JSON_QUOTE writes `\\u001F` where orjson writes `\\u001f`: the escapes themselves (an
    odd run of backslashes before the `u`), never text that only looks like one."""
    if b"\\u00" not in b"".join(batch):
        return batch
    return [
        _UPPER_ESCAPE.sub(lambda m: m.group(1) + b"\\u00" + m.group(2).lower(), line)
        if b"\\u00" in line
        else line
        for line in batch
    ]


def _fields(conn: Any, select_sql: str, spec: TableSpec) -> tuple[list[Field], list[tuple[Any, Any]]]:
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT * FROM ({select_sql}) AS rv_rows LIMIT 0")
        result = cur._result
        fields = [
            Field(col.type.kind, f.type_code, f.charsetnr, f.scale, f.length, bool(f.flags & FLAG.ZEROFILL))
            for col, f in zip(spec.columns, result.fields, strict=True)
        ]
        return fields, list(result.converters)
    finally:
        cur.close()


def _longest(conn: Any, select_sql: str, refs: list[str]) -> int:
    """The most bytes the columns `refs` hold together in one row of the SELECT."""
    total = " + ".join(f"IFNULL(LENGTH({ref}), 0)" for ref in refs)
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT MAX({total}) FROM ({select_sql}) AS rv_rows")
        row = cur.fetchone()
    finally:
        cur.close()
    return int(row[0]) if row and row[0] is not None else 0


def _escapes_backslashes(conn: Any) -> bool:
    cur = conn.cursor()
    try:
        cur.execute("SELECT @@SESSION.sql_mode")
        row = cur.fetchone()
    finally:
        cur.close()
    return row is not None and "NO_BACKSLASH_ESCAPES" not in str(row[0]).upper()


def lines(dialect: Any, conn: Any, spec: TableSpec, select_sql: str) -> Iterator[list[bytes]]:
    """The table's records as JSON lines, in batches: built by the server where it can."""
    rows = RowEncoder(spec, "mysql")
    plain = dialect.plain(select_sql)
    fields, converters = _fields(conn, plain, spec)
    sql = None
    if spec.columns and _escapes_backslashes(conn):
        sql = line_sql(
            spec,
            fields,
            plain,
            quote=lambda name: dialect.plain(dialect.quote(name)),  # sent without parameters
            literal=conn.escape,
            packet=getattr(dialect, "_packet", 0),
            longest=lambda refs: _longest(conn, plain, refs),
        )
    if sql is None:
        yield from rows.batches(dialect.stream(conn, select_sql, FETCH_ROWS))
        return
    docs_at = [i for i, field in enumerate(fields) if _is_document(field)]

    def decode(values: list[Any], docs: list[Any]) -> sql_lines.Row:
        row = [_convert(v, *converters[i]) for i, v in enumerate(values)]
        for i, doc in zip(docs_at, docs, strict=True):
            row[i] = doc
        return tuple(row)

    def encoder(i: int) -> Callable[[Any], bytes]:
        return lambda doc: rows.value(i, doc)

    builder = sql_lines.LineBuilder(rows, decode, [encoder(i) for i in docs_at])
    strings = any(f.kind in ("string", "uuid") for f in fields)
    for fetched in _fetch(conn, sql):
        batch = builder.lines(fetched)
        yield fix_escapes(batch) if strings else batch


def _convert(value: Any, encoding: str | None, converter: Callable[[Any], Any] | None) -> Any:
    """A value's bytes as PyMySQL's result reads them (`MySQLResult._read_row_from_packet`)."""
    if value is None:
        return None
    data: Any = base64.b64decode(value)
    if encoding is not None:
        data = data.decode(encoding)
    return converter(data) if converter is not None else data


def _fetch(conn: Any, sql: str) -> Iterator[list[tuple[Any, ...]]]:
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute(sql)
    try:
        rows = PacketRows.of(cur)
        if rows is not None:
            yield from rows.batches(FETCH_ROWS)
            return
        while fetched := cur.fetchmany(FETCH_ROWS):
            yield list(fetched)
    finally:
        cur.close()
