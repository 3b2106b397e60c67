"""PostgreSQL's fast backup path: each record's line is built by PostgreSQL itself.

One SELECT per table concatenates the line (`sql_lines`) from each value's text, written
the row path's way only where PostgreSQL's text provably is it:

  integers as they are; text through `to_json` (its escapes are orjson's: `\\"`, `\\\\`, \\b
  \\f \\n \\r \\t, `\\u00XX` for the other control characters, all else as it is); booleans;
  uuids; intervals (IntervalStyle iso_8601, set by the dialect); bytea as base64;
  numerics whose text `str(Decimal)` keeps (not below 1e-6, no zero with more than six
  decimals, no NaN or infinity); floats within 1e-4..1e15 (float4: 1e-4..1e6), where
  PostgreSQL's shortest digits are written without an exponent, as orjson does (`.0` added
  to whole numbers); dates and timestamps of years 1-9999, times before 24:00 (DateStyle
  ISO; microseconds padded to six digits, `T` between date and time, `+00:00` for the
  session's UTC). JSON documents are fetched beside the line, as text, and written by the
  row path's own encoder (`sql_lines`).

A row holding any other value comes as the array of its values' texts (PostgreSQL's output
functions, as the driver reads them), which psycopg's loaders of the connection read and
the row path encodes (`sql_lines.LineBuilder`). A table with a column of any other type
(arrays, timetz, ranges, money...) is read by the row path whole, as is every table when
the session's settings are not the ones the texts above assume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from psycopg import pq
from psycopg.adapt import Transformer

from ..backuprows import RowEncoder
from ..schema import TableSpec
from . import sql_lines

FETCH_ROWS = 5000
MAX_ARGS = 100
"""PostgreSQL's limit on a function's arguments (FUNC_MAX_ARGS), `concat`'s too."""
_INTS = frozenset({20, 21, 23})
_TEXTS = frozenset({25, 1043, 1042})
_JSON = frozenset({114, 3802})
_SETTINGS = {
    "DateStyle": "ISO, ",
    "TimeZone": "UTC",
    "IntervalStyle": "iso_8601",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "standard_conforming_strings": "on",
}


@dataclass(frozen=True)
class Value:
    """How one column's value becomes its line text: `text` (SQL, for a non-NULL value) is
    right where `ok` holds (None: always)."""

    text: str
    ok: str | None = None


def _quoted(x: str) -> str:
    return f"'\"' || {x}::text || '\"'"


def _float(x: str, top: str) -> Value:
    text = f"CASE WHEN {x} = trunc({x}) THEN {x}::text || '.0' ELSE {x}::text END"
    return Value(text, f"(abs({x}) >= 0.0001 AND abs({x}) < {top} OR {x} = 0)")


def _numeric(x: str) -> Value:
    ok = f"({x} = 0 AND scale({x}) <= 6 OR abs({x}) >= 0.000001 AND abs({x}) < 'Infinity')"
    return Value(_quoted(x), ok)


def _timestamp(x: str, zoned: bool) -> Value:
    clock = f"left({x}::text, -3)" if zoned else f"{x}::text"
    width = f"CASE WHEN date_trunc('second', {x}) = {x} THEN 19 ELSE 26 END"
    text = f"'\"' || rpad(replace({clock}, ' ', 'T'), {width}, '0') || '{'+00:00' if zoned else ''}\"'"
    zone = "+00" if zoned else ""
    ok = f"({x} >= '0001-01-01 00:00:00{zone}' AND {x} < '10000-01-01 00:00:00{zone}')"
    return Value(text, ok)


def _time(x: str) -> Value:
    text = f"'\"' || rpad({x}::text, CASE WHEN length({x}::text) = 8 THEN 8 ELSE 15 END, '0') || '\"'"
    return Value(text, f"{x} < '24:00:00'")


def value_sql(kind: str, oid: int, x: str) -> Value | None:
    """The line text of column `x` (of `kind`, read as type `oid`); None: not this way."""
    if kind == "integer" and oid in _INTS:
        return Value(f"{x}::text")
    if kind == "string" and oid in _TEXTS:
        return Value(f"to_json({x})::text")
    simple = {
        ("boolean", 16): Value(f"CASE {x} WHEN true THEN 'true' WHEN false THEN 'false' END"),
        ("uuid", 2950): Value(_quoted(x)),
        ("interval", 1186): Value(_quoted(x)),
        ("bytes", 17): Value(f"'\"' || translate(encode({x}, 'base64'), E'\\n', '') || '\"'"),
        ("date", 1082): Value(_quoted(x), f"({x} >= '0001-01-01' AND {x} <= '9999-12-31')"),
        ("time", 1083): _time(x),
    }
    if (kind, oid) in simple:
        return simple[(kind, oid)]
    if kind == "decimal" and oid == 1700:
        return _numeric(x)
    if kind == "float" and oid in (700, 701):
        return _float(x, "1e6" if oid == 700 else "1e15")
    if kind == "datetime" and oid in (1114, 1184):
        return _timestamp(x, zoned=oid == 1184)
    return None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _concat(args: Sequence[str]) -> str:
    """`concat` of any number of arguments: nested past PostgreSQL's limit."""
    if len(args) <= MAX_ARGS:
        return f"concat({', '.join(args)})"
    step = MAX_ARGS - 1
    return _concat([_concat(args[i : i + step]) for i in range(0, len(args), step)])


def line_sql(
    spec: TableSpec, oids: Sequence[int], select_sql: str, quote: Callable[[str], str]
) -> str | None:
    """The SELECT of each row's line (see the module docstring) in UTF-8 pieces, a JSON
    document's text between two; None when a column has a type this path does not write."""
    refs = [f"rv_rows.{quote(c.name)}" for c in spec.columns]
    pieces: list[list[tuple[str, str]]] = [[]]
    docs: list[str] = []
    oks: list[str] = []
    for col, oid, x in zip(spec.columns, oids, refs, strict=True):
        if col.type.kind == "json" and oid in _JSON:
            pieces[-1].append((col.name, ""))
            pieces.append([])
            docs.append(f"convert_to({x}::text, 'UTF8')")
            continue
        value = value_sql(col.type.kind, oid, x)
        if value is None:
            return None
        pieces[-1].append((col.name, f"coalesce({value.text}, 'null')"))
        if value.ok is not None:
            oks.append(f"({x} IS NULL OR {value.ok})")
    parts = [_concat(args) for args in sql_lines.concat_parts(pieces, _literal)]
    if oks:
        texts = ", ".join(
            "NULL" if c.type.kind == "json" else f"CASE WHEN {x} IS NULL THEN NULL ELSE concat({x}) END"
            for c, x in zip(spec.columns, refs, strict=True)
        )
        array = f"array_to_json(ARRAY[{texts}]::text[])::text"
        parts[0] = f"CASE WHEN {' AND '.join(oks)} THEN {parts[0]} ELSE {array} END"
    columns = [f"convert_to({part}, 'UTF8')" for part in parts]
    for i, doc in enumerate(docs):
        columns.insert(2 * i + 1, doc)
    return f"SELECT {', '.join(columns)} FROM ({select_sql}) AS rv_rows"


def _settings_hold(conn: Any) -> bool:
    for name, expected in _SETTINGS.items():
        row = conn.execute(f"SHOW {name}").fetchone()
        if row is None or not str(row[0]).startswith(expected):
            return False
    float_digits = conn.execute("SHOW extra_float_digits").fetchone()
    return float_digits is not None and int(float_digits[0]) >= 1


def lines(dialect: Any, conn: Any, spec: TableSpec, select_sql: str) -> Iterator[list[bytes]]:
    """The table's records as JSON lines, in batches: built by PostgreSQL where it can."""
    rows = RowEncoder(spec, "postgresql")
    plain = dialect.plain(select_sql)
    oids = [d.type_code for d in conn.execute(f"SELECT * FROM ({plain}) AS rv_rows LIMIT 0").description]
    quote = lambda name: dialect.plain(dialect.quote(name))  # noqa: E731 - sent without parameters
    sql = line_sql(spec, oids, plain, quote) if spec.columns and _settings_hold(conn) else None
    if sql is None:
        yield from rows.batches(dialect.stream(conn, select_sql, FETCH_ROWS))
        return
    loads = Transformer(conn)
    loads.set_loader_types(oids, pq.Format.TEXT)

    json_at = [i for i, col in enumerate(spec.columns) if col.type.kind == "json"]

    def decode(texts: list[Any], docs: list[Any]) -> sql_lines.Row:
        raw = [None if t is None else t.encode() for t in texts]
        for i, doc in zip(json_at, docs, strict=True):
            raw[i] = doc
        return tuple(loads.load_sequence(raw))

    def encoder(i: int) -> Callable[[bytes], bytes]:
        loader = loads.get_loader(oids[i], pq.Format.TEXT)
        return lambda doc: rows.value(i, loader.load(doc))

    builder = sql_lines.LineBuilder(rows, decode, [encoder(i) for i in json_at])
    for fetched in _fetch(conn, sql):
        yield builder.lines(fetched)


def _fetch(conn: Any, sql: str) -> Iterator[list[tuple[bytes, ...]]]:
    """The lines in batches, streamed (libpq's chunked rows): PostgreSQL goes on building
    them while the batch before is written."""
    stream = conn.cursor().stream(sql, binary=True, size=FETCH_ROWS)
    while batch := list(islice(stream, FETCH_ROWS)):
        yield batch
