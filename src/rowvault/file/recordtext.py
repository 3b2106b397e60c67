"""A record as the file spells it, where orjson's reading of it loses something: a key named
twice (orjson keeps the last), an integer past 64 bits (orjson makes it a double), a number
spelled `1.50`. The loader asks these only of the batches that need it."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import orjson


def as_written(record: Any, keys: Sequence[str], raw: Any) -> list[Any]:
    """The record's values of `keys` as the file spells them: orjson reads an integer past 64
    bits as a float (`1e+40`) and `1.50` as 1.5, so those are read again from the line."""
    values = [record.get(k) for k in keys] if isinstance(record, dict) else [None] * len(keys)
    if all(type(v) in (str, int) or v is None for v in values) or not isinstance(raw, bytes):
        return values
    try:
        texts = json.loads(raw, parse_int=str, parse_float=str, parse_constant=str)
    except ValueError:
        return values
    if not isinstance(texts, dict):
        return values
    return [_spelled(texts.get(k)) if k in texts else v for k, v in zip(keys, values, strict=True)]


def _spelled(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


# -- a key named twice in a record ----------------------------------------------------------


def duplicate_keys(chunk: list[Any], records: list[Any], errors: dict[int, str], data: bytes | None) -> None:
    """Records whose line names a key twice (`{"id": 1, "id": 2}`), which orjson reads as the
    last value silently, become record errors.

    Cheap tests first, at C speed, on the batch written again by orjson (about a fifth of
    the parse). A file rowvault wrote holds each record as orjson writes it: if the batch
    comes out as `data` itself, no line names a key twice, or its record would be shorter.
    Otherwise (another writer's spacing, a number spelled another way) the colons are
    counted. Outside strings a colon follows each key, and without `\\u` escapes the
    strings hold the same colons either way; so a line has at least as many colons as its
    record written again, and exactly as many only if it names no key twice (at any depth).
    Only a line that fails is parsed again with the json module, which sees every key."""
    if data is not None:
        again = _dumped(records)
        if again == data or (b"\\u" not in data and again.count(b":") == data.count(b":")):
            return
    for i, (line, record) in enumerate(zip(chunk, records, strict=True)):
        if type(record) is not dict:
            continue
        if b"\\u" not in line and line.count(b":") == _dumped(record).count(b":"):
            continue
        key = _repeated_key(line)
        if key is not None:
            errors[i] = f"duplicate key {key!r} in the record"
            records[i] = None  # the rejects file keeps the line as it was written


LONG_DIGITS = re.compile(rb"\d{19,}")
"""A run of digits orjson may read as a double: an integer past 64 bits (19 digits and more)."""


def exact_integers(chunk: list[Any], records: list[Any]) -> None:
    """orjson reads an integer past 64 bits as a double (`1.2345678901234568e+29`): the lines
    that may hold one are read again by the json module, which keeps every digit, so a JSON
    or text column gets the number as written and an integer or decimal column refuses it."""
    for i, line in enumerate(chunk):
        if records[i] is not None and isinstance(line, bytes) and LONG_DIGITS.search(line):
            with suppress(ValueError, RecursionError):  # orjson read it; else keep what it made
                records[i] = json.loads(line)


def _dumped(value: Any) -> bytes:
    """orjson's writing of `value`; empty when it cannot write it (nesting past 255 levels, an
    integer past 64 bits), which sends the line to the thorough check."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return b""


def _repeated_key(line: bytes) -> str | None:
    """The first top-level key the line names twice, if any."""
    try:
        pairs = json.loads(line, object_pairs_hook=list, parse_int=str, parse_float=str)
    except ValueError:  # orjson read it; the json module should too
        return None
    if not isinstance(pairs, list):
        return None
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return str(key)
        seen.add(key)
    return None
