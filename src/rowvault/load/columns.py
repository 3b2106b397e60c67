"""The codec in columns: how each target column's values are read from a batch of record
lines by DuckDB, converted for the target engine, and checked, as SQL over the whole batch.

The rule that keeps the columnar path exact: it takes a value only in a form for which the
row codec (`codec.restore_decoder`) would send the database the very same thing - most
often the text as written, which the row codec also passes through unchanged - and checks
that form with a guard. A batch in which any value fails its guard goes to the row path
whole, which converts, names and rejects values one by one exactly as before. So the two
paths cannot disagree on what they store; the columnar one only declines more often.

What every batch is also checked for (`ColumnarCodec.query`): each line must be exactly
DuckDB's writing of what it read from it (`to_json(from_json(line)) = line`). That one
comparison catches what a typed reader would otherwise let through: an unknown or missing
key, a key named twice, `1.5` or `"12"` or `true` in an integer column (DuckDB would cast
them), another writer's spacing or number spelling. Files rowvault writes pass it; others
take the row path. JSON columns are checked once more against orjson's own writing
(`columnar.canonical_json`), which is what the row path stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from ..codec import ColumnType, decimal_places
from .plan import TablePlan

_D = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_T = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
_OFFSET = "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
_NUMBER = "-?[0-9]+(\\.[0-9]+)?"
_B64 = "([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?"
"""Base64 as the strict decoder takes it, with the unused bits of the last symbol zero (so
that no two texts decode to the same bytes)."""


def quote(name: str) -> str:
    """A DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Column:
    read_as: str
    """The DuckDB type the value is read as from the line."""
    output: str
    """SQL for what goes to the database, over `v` (the value read)."""
    guard: str | None = None
    """SQL that is true when the value may take the columnar path (NULL passes)."""


@dataclass(frozen=True)
class ColumnarCodec:
    """One table's columnar reading: built once per table, the same for every batch."""

    query: str
    """SQL over a table `lines(line)`: the target's columns `c0..cN`, then `rowvault_ok`."""
    names: tuple[str, ...]
    """The target column of each `c<i>`."""
    json_outputs: tuple[int, ...]
    """Positions of JSON columns, checked against orjson's writing (`canonical_json`)."""
    key_outputs: tuple[int, ...]
    """Positions of the key columns (for the progress record's last id)."""


def build(plan: TablePlan, dialect: str) -> ColumnarCodec | None:
    """The table's columnar reading on `dialect`, or None when a column can only take the
    row path (its kind, or a file that does not describe the table)."""
    if not plan.file_columns or len(plan.source_types) != len(plan.keys):
        return None
    names = plan.file_columns
    if any("\x00" in n for n in names) or len({n.lower() for n in names}) != len(names):
        return None  # DuckDB's struct fields are case-insensitive and cannot hold NUL
    known = set(plan.keys)
    if any(n not in known and n not in plan.ignored_keys for n in names):
        return None
    columns: list[_Column] = []
    for target_type, source in zip(plan.target.types, plan.source_types, strict=True):
        column = _column(target_type, source, dialect)
        if column is None:
            return None
        columns.append(column)
    read_as = {k: c.read_as for k, c in zip(plan.keys, columns, strict=True)}
    structure = {n: read_as.get(n, "JSON") for n in names}
    selects, guards = [], ["to_json(s)::VARCHAR = line"]
    for i, (key, column) in enumerate(zip(plan.keys, columns, strict=True)):
        ref = f"s.{quote(key)}"
        selects.append(f"{column.output.replace('@v', ref)} AS c{i}")
        if i in plan.required:
            guards.append(f"{ref} IS NOT NULL")
        if column.guard:
            guards.append(f"({ref} IS NULL OR ({column.guard.replace('@v', ref)}))")
    query = (
        f"SELECT {', '.join(selects)}, coalesce({' AND '.join(guards)}, false) AS rowvault_ok "
        f"FROM (SELECT from_json(line, {literal(orjson.dumps(structure).decode())}) AS s, line FROM lines)"
    )
    json_outputs = tuple(i for i, t in enumerate(plan.target.types) if t.kind == "json")
    return ColumnarCodec(query, tuple(plan.target.columns), json_outputs, tuple(plan.key_positions))


def _column(target: ColumnType, source: ColumnType | None, dialect: str) -> _Column | None:
    kind = target.kind
    if source is None:
        return None
    if kind == "integer":
        return _Column("BIGINT", "@v")
    if kind == "float":
        return _Column("DOUBLE", "@v")
    if kind == "string":
        return _Column("VARCHAR", "@v")
    if kind == "uuid":
        return _Column("VARCHAR", "@v")
    if kind == "boolean":
        return _Column("BOOLEAN", "@v" if dialect == "postgresql" else "CAST(@v AS BIGINT)")
    if kind == "decimal":
        # SQLite gets doubles: its own reading of decimal text is not correctly rounded
        output = "CAST(@v AS DOUBLE)" if dialect == "sqlite" else "@v"
        return _Column("VARCHAR", output, _decimal_guard(target, dialect))
    if kind in ("date", "time", "datetime"):
        guard = _temporal_guard(kind, target, source, dialect)
        return None if guard is None else _Column("VARCHAR", "@v", guard)
    if kind == "bytes":
        output = {
            "sqlite": "from_base64(@v)",
            "postgresql": "'\\x' || hex(from_base64(@v))",
        }.get(dialect, "hex(from_base64(@v))")
        return _Column("VARCHAR", output, f"regexp_full_match(@v, {literal(_B64)})")
    if kind == "json":
        if source.kind in ("string", "other"):
            return None  # the row path keeps such text as it is, not as JSON
        marks = "NOT (CAST(@v AS VARCHAR) LIKE '{\"$stored\":%' OR CAST(@v AS VARCHAR) LIKE '{\"$base64\":%')"
        return _Column("JSON", "CAST(@v AS VARCHAR)", marks)
    return None


def _decimal_guard(target: ColumnType, dialect: str) -> str:
    """Decimal text the row codec passes on unchanged: SQLite's of at most 15 characters (it
    keeps about 15 digits), the others' with no more places than the column keeps."""
    places, _ = decimal_places(target, dialect)
    if dialect == "sqlite":
        return f"length(@v) <= 15 AND regexp_full_match(@v, {literal(_NUMBER)})"
    if places is None:
        return f"regexp_full_match(@v, {literal(_NUMBER)})"
    fraction = f"(\\.[0-9]{{1,{places}}})?" if places else ""
    return f"regexp_full_match(@v, {literal('-?[0-9]+' + fraction)})"


def _temporal_guard(kind: str, target: ColumnType, source: ColumnType, dialect: str) -> str | None:
    """Dates and times in the forms that `codec` passes on unchanged to this engine."""
    kept = dialect == "sqlite" and source.affinity  # SQLite from SQLite: text kept as written
    if kind == "date":
        return _valid_date(f"regexp_full_match(@v, {literal(_D)})")
    if kind == "time":
        if dialect == "mysql":
            form = "-?[0-9]{1,3}:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?"
        elif dialect == "postgresql" or kept:
            form = _T + "(\\.[0-9]{1,6})?"
        else:
            form = _T + "\\.[0-9]{6}"
        if target.timezone:
            return None
        return f"regexp_full_match(@v, {literal(form)})"
    if kept:
        form = f"{_D}[ T]{_T}(\\.[0-9]{{1,6}})?{_OFFSET}?"
    elif dialect == "sqlite":
        form = f"{_D} {_T}\\.[0-9]{{6}}"
    elif dialect == "postgresql" and target.timezone:
        form = f"{_D}[ T]{_T}(\\.[0-9]{{1,6}})?{_OFFSET}?"
    else:
        form = f"{_D}[ T]{_T}(\\.[0-9]{{1,6}})?"
    return _valid_date(f"regexp_full_match(@v, {literal(form)})")


def _valid_date(form: str) -> str:
    """The form, and a real day of a year from 1 on (`2023-02-29` matches the form only)."""
    return f"{form} AND substr(@v, 1, 4) <> '0000' AND try_cast(substr(@v, 1, 10) AS DATE) IS NOT NULL"


def outputs(codec: ColumnarCodec) -> Sequence[str]:
    return [f"c{i}" for i in range(len(codec.names))]
