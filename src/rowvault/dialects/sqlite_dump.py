"""SQLite's fast backup path: `json_object(...)` builds each record's line inside SQLite.

A value goes into `json_object` as it is only where SQLite provably writes the bytes the row
path (`backuprows.RowEncoder`) would: integers and text, NULL, REAL values whose 15-digit
text (json_object's `%!.15g`) reads back as the same double within 1e-4..1e15 (there the
shortest digits and the decimal notation of Python and orjson agree), and text that
matches the column's kind by a strict pattern (dates, times, datetimes, decimals). Every
other value - a REAL with more digits, a blob, a value that does not fit its declared type,
every JSON document (orjson's reading of a document merges duplicate keys and respells
numbers and escapes, which no SQL function of SQLite does) - is written by the row path's
own encoder, called from SQL as the function `rowvault_value(column, value)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from ..backuprows import RowEncoder
from ..errors import BackupAborted
from ..schema import TableSpec

FETCH_ROWS = 5000
JSON_CACHE = 4096
"""Distinct JSON documents (of up to 1 KB) whose line fragment is kept per table."""
_LAST_IS_DIGIT = "substr({x}, -1) BETWEEN '0' AND '9'"
_YEAR = "substr({x}, 1, 4) >= '0001'"


def _quote_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fallback(i: int, x: str) -> str:
    return f"json(rowvault_value({i}, {x}))"


def _real_ok(x: str) -> str:
    """A REAL that json_object writes as Python's repr and orjson do."""
    return (
        f"(typeof({x}) = 'real' AND ({x} >= 1e-4 AND {x} < 1e15 OR {x} > -1e15 AND {x} <= -1e-4)"
        f" AND CAST(printf('%!.15g', {x}) AS REAL) = {x})"
    )


def _case(i: int, x: str, *branches: tuple[str, str]) -> str:
    whens = " ".join(f"WHEN {cond} THEN {value}" for cond, value in branches)
    return f"CASE WHEN {x} IS NULL THEN NULL {whens} ELSE {_fallback(i, x)} END"


# Text that Python's fromisoformat reads, proved with LIKE (the shape) and SQLite's own date
# functions, which refuse or, given a modifier, normalise (2024-02-30 -> 2024-03-01) anything
# out of range: the text must come back unchanged. LIKE and date() cost a third of a GLOB with
# digit classes. Comparisons are of function results: a column of NUMERIC affinity (DATE)
# would turn the literal '0001' into the number 1, which every text is greater than.
def _date_ok(x: str) -> str:
    return (
        f"(typeof({x}) = 'text' AND {x} LIKE '____-__-__' AND {_YEAR.format(x=x)}"
        f" AND date({x}, '+0 days') = {x})"
    )


def _time_ok(x: str) -> str:
    return (
        f"(typeof({x}) = 'text' AND ({x} LIKE '__:__:__' OR {x} LIKE '__:__:__.______')"
        f" AND substr({x}, 1, 2) < '24' AND time({x}, '+0 days') = substr({x}, 1, 8)"
        f" AND {_LAST_IS_DIGIT.format(x=x)})"
    )


def _datetime_ok(x: str) -> str:
    shapes = f"({x} LIKE '____-__-__ __:__:__' OR {x} LIKE '____-__-__ __:__:__.______')"
    return (
        f"(typeof({x}) = 'text' AND {shapes} AND {_YEAR.format(x=x)}"
        f" AND datetime({x}, '+0 days') = substr({x}, 1, 19) AND {_LAST_IS_DIGIT.format(x=x)})"
    )


def _decimal_text_ok(x: str) -> str:
    """Text that Decimal() certainly reads: digits, one point at most, a leading minus."""
    return (
        f"(typeof({x}) = 'text' AND {x} GLOB '*[0-9]*' AND {x} NOT GLOB '*[^0-9.-]*'"
        f" AND {x} NOT GLOB '?*-*' AND {x} NOT GLOB '*.*.*')"
    )


_INT = "(typeof({x}) = 'integer')"
_TEXT = "(typeof({x}) = 'text')"


def value_sql(kind: str, i: int, x: str) -> str:
    """The json_object argument for column `i` (SQL `x`) of a kind."""
    integer, text = _INT.format(x=x), _TEXT.format(x=x)
    if kind == "integer":
        return _case(i, x, (integer, x))
    if kind == "float":
        return _case(i, x, (integer, x), (_real_ok(x), x))
    if kind == "decimal":
        return _case(
            i,
            x,
            (integer, f"CAST({x} AS TEXT)"),
            (_real_ok(x), f"printf('%!.15g', {x})"),
            (_decimal_text_ok(x), x),
        )
    if kind == "boolean":
        return _case(
            i, x, (f"({integer} AND {x} IN (0, 1))", f"json(CASE {x} WHEN 1 THEN 'true' ELSE 'false' END)")
        )
    if kind in ("bytes", "json"):
        return _case(i, x)
    if kind == "date":
        return _case(i, x, (_date_ok(x), x), (integer, x))
    if kind == "datetime":
        return _case(i, x, (_datetime_ok(x), x), (integer, x))
    if kind == "time":
        return _case(i, x, (_time_ok(x), x))
    return _case(i, x, (text, x), (integer, x), (_real_ok(x), x))  # written by orjson as they are


def line_sql(spec: TableSpec, select_sql: str, quote: Callable[[str], str]) -> str:
    """One column per record: its line, as bytes."""
    args = ", ".join(
        f"{_quote_text(col.name)}, {value_sql(col.type.kind, i, 'rv_rows.' + quote(col.name))}"
        for i, col in enumerate(spec.columns)
    )
    return f"SELECT CAST(json_object({args}) AS BLOB) FROM ({select_sql}) AS rv_rows"


def _value_function(rows: RowEncoder) -> Callable[[int, Any], str]:
    kinds = [col.type.kind for col in rows.spec.columns]
    caches: list[dict[str, str]] = [{} for _ in kinds]

    def rowvault_value(i: int, value: Any) -> str:
        if kinds[i] != "json" or type(value) is not str or len(value) > 1024:
            return rows.value(i, value).decode()
        cache = caches[i]
        found = cache.get(value)
        if found is None:
            if len(cache) >= JSON_CACHE:
                cache.clear()
            found = cache[value] = rows.value(i, value).decode()
        return found

    return rowvault_value


def lines(conn: Any, spec: TableSpec, select_sql: str, quote: Callable[[str], str]) -> Iterator[list[bytes]]:
    """The table's records as JSON lines, in batches, read with `json_object` (see above)."""
    rows = RowEncoder(spec, "sqlite")
    conn.create_function("rowvault_value", 2, _value_function(rows), deterministic=True)
    cur = conn.execute(line_sql(spec, select_sql, quote))
    first = itemgetter(0)
    try:
        while fetched := cur.fetchmany(FETCH_ROWS):
            batch = list(map(first, fetched))
            _check_utf8(batch, spec.name)
            yield batch
    finally:
        cur.close()


def _check_utf8(batch: list[bytes], table: str) -> None:
    """SQLite hands text out as stored; the row path's driver would refuse text that is not
    UTF-8 (and so does this one)."""
    joined = b"".join(batch)
    if joined.isascii():
        return
    try:
        joined.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BackupAborted(f"a text value is not valid UTF-8 ({exc})", table=table) from exc
