"""Check a backup's table descriptions before anything is built from them.

A restore creates missing tables from the backup's metadata: column names and types, keys,
indexes. The file is untrusted, so every part of a description is checked for its shape
(names are strings, type parameters whole numbers, keys name the table's own columns) and
every type text against the closed set of `typenames`. Each problem names the table and the
column; a file with any problem is refused before a single statement runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..typenames import MAX_PARAMETER, TypeNameError, vetted_type

MAX_NAME = 128
"""Longer names are not identifiers any engine keeps as given (PostgreSQL stops at 63)."""


def description_problems(table: str, described: Any, dialect: str) -> list[str]:
    """Everything wrong with the description of `table` for a restore into `dialect`."""
    if not isinstance(described, Mapping):
        return [f"table {table!r}: its description in the metadata is not an object"]
    return [f"table {table!r}: {problem}" for problem in _problems(described, dialect)]


def _problems(described: Mapping[str, Any], dialect: str) -> Iterator[str]:
    columns = described.get("columns") or []
    if not isinstance(columns, list):
        yield "'columns' is not a list"
        return
    names: set[str] = set()
    for i, column in enumerate(columns):
        if not isinstance(column, Mapping) or not _is_name(column.get("name")):
            yield f"column #{i + 1} has no usable name (a string of 1 to {MAX_NAME} characters)"
            continue
        name = str(column["name"])
        if name in names:
            yield f"column {name!r} is described twice"
        if dialect == "mysql" and "`" in name:
            yield (
                f"column {name!r}: MySQL/MariaDB column names with a backtick cannot be read "
                "back by SQLAlchemy's reflection, so rowvault cannot restore them"
            )
        names.add(name)
        yield from (f"column {name!r}: {p}" for p in _column_problems(column, dialect))
    yield from _key_problems(described, names)


def _column_problems(column: Mapping[str, Any], dialect: str) -> Iterator[str]:
    for key in ("length", "precision", "scale"):
        value = column.get(key)
        if value is not None and not (type(value) is int and 0 <= value <= MAX_PARAMETER):
            yield f"{key} {value!r} is not a whole number from 0 to {MAX_PARAMETER}"
    for key in ("nullable", "hasDefault", "timezone"):
        if column.get(key) is not None and not isinstance(column.get(key), bool):
            yield f"{key} {column.get(key)!r} is not true or false"
    kind = column.get("type")
    if kind is not None and not isinstance(kind, str):
        yield f"type {kind!r} is not a type name"
    sql = column.get("sqlType")
    if sql is None:
        return
    if not isinstance(sql, str):
        yield f"sqlType {sql!r} is not text"
        return
    try:
        vetted_type(sql, dialect)
    except TypeNameError as exc:
        yield f"sqlType {sql[:60]!r} is not a column type rowvault can create ({exc})"


def _key_problems(described: Mapping[str, Any], names: set[str]) -> Iterator[str]:
    def check_columns(what: str, value: Any, within: set[str] | None = names) -> Iterator[str]:
        if not isinstance(value, list) or not value or not all(_is_name(c) for c in value):
            yield f"{what}: expected a list of column names"
        elif within is not None and (unknown := [c for c in value if c not in within]):
            yield f"{what}: names columns the table does not have: {unknown}"

    primary = described.get("primaryKey") or []
    if primary:
        yield from check_columns("primaryKey", primary)
    for group, label in (("unique", "unique key"), ("indexes", "index"), ("foreignKeys", "foreign key")):
        items = described.get(group) or []
        if not isinstance(items, list):
            yield f"{group!r} is not a list"
            continue
        for i, item in enumerate(items):
            what = f"{label} #{i + 1}"
            if group == "unique":
                yield from check_columns(what, item)
            elif not isinstance(item, Mapping):
                yield f"{what} is not an object"
            elif group == "indexes":
                if item.get("name") is not None and not _is_name(item.get("name")):
                    yield f"{what}: its name is not a string of 1 to {MAX_NAME} characters"
                yield from check_columns(what, item.get("columns"))
            else:
                yield from check_columns(what, item.get("columns"))
                yield from check_columns(f"{what} (referred columns)", item.get("referredColumns"), None)
                if not _is_name(item.get("references")):
                    yield f"{what}: 'references' is not a table name"
                elif len(item.get("columns") or []) != len(item.get("referredColumns") or []):
                    yield f"{what}: its columns and referred columns differ in number"


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME and "\x00" not in value
