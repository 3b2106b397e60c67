"""Read backups in any valid JSON layout, incrementally (ijson's C backend).

This is the fallback for files rowvault did not write in its line layout: pretty-printed
files, single-line files, the original feature's exports, or an HTTP body of the form
`{"backupData": {...}}`. Records are built one at a time, so memory stays flat.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any

import ijson
from ijson.common import ObjectBuilder

from ..errors import BackupFileError
from .format import Section, read_failure
from .limits import MAX_LINE_BYTES, describe_size
from .linelayout import ZLIB_ERRORS

_FAILURES: tuple[type[Exception], ...] = (EOFError, gzip.BadGzipFile, *ZLIB_ERRORS, OSError)

WRAPPER_KEY = "backupData"
FEED_BYTES = 64 << 10
"""What the parser is fed at a time while events come."""
MAX_DEPTH = 1024
"""How deep a record or the metadata may nest: as deep as orjson reads in the line layout."""
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
"""An escaped high surrogate (`\\ud800`) that no low one follows: yajl would read it as '?'."""
_CARRY = 64
"""Bytes of a feed kept for the next one's surrogate check (an escape may span two feeds)."""
_PARSER_WORDS = (
    ("integer overflow", "an integer too large to read exactly (past 64 bits)"),
    ("invalid bytes in UTF8", "bytes that are not UTF-8"),
    ("trailing garbage", "more data follows"),
    ("invalid char in json text", "a character where a JSON value should be (NaN and Infinity are not JSON)"),
)
_KIND = {
    "start_array": "an array",
    "start_map": "an object",
    "string": "a string",
    "number": "a number",
    "integer": "a number",
    "double": "a number",
    "boolean": "a boolean",
    "null": "null",
}
Event = tuple[str, Any]


@dataclass(slots=True)
class _Watch:
    """Bytes fed to the parser so far, and where the value being built started (-1: none)."""

    fed: int = 0
    since: int = -1


class _ValueTooLong(Exception):
    def __init__(self, cap: int) -> None:
        self.cap = cap


class _Unplaced(BackupFileError):
    """A failure of the parser (or the reading under it), which knows no table or record:
    the layout's walk adds where it was."""


class _TooDeep(Exception):
    pass


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _events(stream: IO[bytes], name: str, max_value: int, watch: _Watch | None = None) -> Iterator[Event]:
    """ijson's events, fed by hand rather than by ijson's own reader.

    yajl lexes a value that spans two feeds again from its start, so a long string fed in
    fixed steps costs its length squared (64 MiB: 18 s of CPU). While no event comes, each
    feed is as large as what is already held, which keeps the work linear; more than
    `max_value` bytes without an event (one value, or one run of whitespace) is refused,
    having held about that much. So is a value being built (`watch.since`) past `max_value`,
    which a dict of many small members would be: _ValueTooLong, checked once per feed.
    The events of a feed are handed on as one list (C-speed iteration between feeds)."""
    return chain.from_iterable(_feeds(stream, name, max_value, watch or _Watch()))


def _feeds(stream: IO[bytes], name: str, max_value: int, watch: _Watch) -> Iterator[list[Event]]:
    """The parser's events a feed at a time. A feed that the parser refuses is handed on as
    far as it was read before the error is raised, so the reader names the record it was in."""
    events = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events, use_float=True)
    quiet = 0  # bytes fed since the last event
    carry = b""
    while data := _read(stream, name, max(FEED_BYTES, min(quiet, max_value + 1 - quiet))):
        watch.fed += len(data)
        if 0 <= watch.since < watch.fed - max_value:
            raise _ValueTooLong(max_value)
        failure = None
        if carry or b"\\" in data:
            held = carry + data
            at = _lone_surrogate(held, final=False)
            if at is not None:  # feed up to the escape, so the reader is in its record
                data, failure = data[: max(at - len(carry), 0)], _surrogate_error(name)
            carry = held[-_CARRY:]
        failure = _send(parser, data, name) or failure
        if events:
            quiet = 0
            yield events  # read to its end before this generator resumes
            del events[:]
            if failure is not None:
                raise failure
            continue
        if failure is not None:
            raise failure
        quiet += len(data)
        if quiet > max_value:
            raise _Unplaced(
                name,
                f"more than {describe_size(max_value)} without a complete JSON value (by byte "
                f"{watch.fed:,}), far past any real record: the file is damaged or is not a backup",
            )
    if carry and _lone_surrogate(carry, final=True) is not None:
        raise _surrogate_error(name)
    failure = _send(parser, None, name, fed=watch.fed)
    yield events
    if failure is not None:
        raise failure


def _read(stream: IO[bytes], name: str, size: int) -> bytes:
    try:
        return stream.read(size)
    except _FAILURES as exc:
        raise _Unplaced(name, read_failure(name, exc).reason) from exc


def _send(parser: Any, data: bytes | None, name: str, *, fed: int = 0) -> _Unplaced | None:
    """Feed `data` to the parser (None: the end, after `fed` bytes); what it refuses, as the
    file's error."""
    try:
        if data is None:
            parser.close()
        elif data:
            parser.send(data)
    except UnicodeDecodeError:  # yajl hands on a lone low surrogate (\udc00) as bytes
        return _surrogate_error(name)
    except ijson.JSONError as exc:
        text = _short(exc)
        if "premature EOF" in text or "incomplete" in text.lower():
            return _Unplaced(name, f"the JSON ends early (after {fed:,} bytes): the file is truncated")
        words = next((plain for key, plain in _PARSER_WORDS if key in text), None)
        return _Unplaced(name, f"not valid JSON: {words or text}")
    return None


def _lone_surrogate(data: bytes, *, final: bool) -> int | None:
    """Where `data` escapes a high surrogate that no low one follows, if it does; an escape
    too near the end to judge waits for the next feed unless this is the `final` one."""
    if b"\\ud" not in data and b"\\uD" not in data:  # most text: no regular expression at all
        return None
    for found in _HIGH_SURROGATE.finditer(data):
        at = found.start()
        slashes = 0
        while slashes < at and data[at - slashes - 1] == 0x5C:  # the backslashes before it
            slashes += 1
        if slashes % 2:  # `\\ud800`: an escaped backslash, then text
            continue
        if final or found.end() + 6 <= len(data):
            return at
    return None


def _surrogate_error(name: str) -> _Unplaced:
    return _Unplaced(
        name,
        "a string escapes half of a surrogate pair (\\ud800-\\udfff alone), which is not text",
    )


def find_key(stream: IO[bytes], name: str, key: str, *, max_value: int = MAX_LINE_BYTES) -> Any:
    """The value of `key` at the top level of the JSON object in `stream` (None if it has
    none), read with the same linear, capped parser as the backups."""
    watch = _Watch()
    events = _events(stream, name, max_value, watch)
    first = next(events, None)
    if first is None or first[0] != "start_map":
        return None
    for event, value in events:
        if event != "map_key":
            return None
        value_event, scalar = next(events)
        if value != key:
            _skip(value_event, events)
        elif value_event not in ("start_map", "start_array"):
            return scalar
        else:
            try:
                return _build(value_event, events, watch)
            except _ValueTooLong as exc:
                raise BackupFileError(name, f"{key!r} is longer than {describe_size(exc.cap)}") from None
    return None


def first_member_ends(data: bytes) -> bool:
    """Whether the first member of the JSON object that `data` begins ends within `data`,
    which may be cut anywhere after it: a first line past the cap whose metadata ends early is
    a whole document on one line (another tool's export), not rowvault's line layout."""
    events = _events(io.BytesIO(data), "<first line>", len(data) + 1)
    try:
        if next(events)[0] != "start_map" or next(events)[0] != "map_key":
            return False
        _skip(next(events)[0], events)
    except (BackupFileError, StopIteration):
        return False
    return True


def _short(exc: Exception) -> str:
    """The first line of the parser's message, without yajl's "lexical error:" prefix (its
    message may come as bytes, and goes on with a quote of the text and a caret)."""
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    first = str(text).strip().splitlines()[0] if str(text).strip() else "parse error"
    for prefix in ("lexical error: ", "parse error: "):
        first = first.removeprefix(prefix)
    return first.rstrip(".")[:200]


def _build(first: str, events: Iterator[Event], watch: _Watch, *, unique: bool = False) -> Any:
    """Build the value that starts with event `first` (a map or an array), watched by the
    events' reader: one past its cap raises _ValueTooLong rather than take gigabytes, one
    nested past MAX_DEPTH _TooDeep; `unique`: a top-level key named twice, _DuplicateKey."""
    builder = ObjectBuilder()
    builder.event(first, None)
    depth = 1
    keys: set[str] | None = set() if unique and first == "start_map" else None
    watch.since = watch.fed
    for event, value in events:
        if keys is not None and depth == 1 and event == "map_key":
            if value in keys:
                raise _DuplicateKey(value)
            keys.add(value)
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooDeep()
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                break
    watch.since = -1
    return builder.value


def _shown(key: str) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


def _skip(first: str, events: Iterator[Event]) -> None:
    if first not in ("start_map", "start_array"):
        return
    depth = 1
    for event, _ in events:
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return


class JsonLayout:
    """Walks a backup object; `metadata` is filled in once the walk has passed it."""

    def __init__(self, stream: IO[bytes], name: str, *, max_value: int = MAX_LINE_BYTES) -> None:
        self.name = name
        self.metadata: dict[str, Any] | None = None
        self._watch = _Watch()
        self._events = _events(stream, name, max_value, self._watch)
        self._place = ""
        """Where the walk is, for the parser's errors: "in the metadata", "after table 'x'"."""

    def sections(self) -> Iterator[Section]:
        first = next(self._events, None)
        if first is None:
            raise BackupFileError(self.name, "the file is empty: it is not a backup")
        if first[0] != "start_map":
            raise BackupFileError(
                self.name,
                f"not a backup: the top level is {_KIND.get(first[0], first[0])}, "
                'expected an object with "metadata" and one array of records per table',
            )
        try:
            yield from self._object_sections(wrapped=False)
            self._place = "after the end of the backup's object"
            for _ in self._events:  # ijson reports trailing garbage only if we read on
                pass
        except _Unplaced as exc:
            if not self._place:
                raise BackupFileError(self.name, exc.reason) from exc
            raise BackupFileError(self.name, f"{self._place}: {exc.reason}") from exc

    def _object_sections(self, *, wrapped: bool) -> Iterator[Section]:
        for event, key in self._events:
            if event == "end_map":
                return
            assert event == "map_key"
            value_event, _ = next(self._events)
            if key == "metadata":
                self._place = "in the metadata"
                if value_event == "start_map":
                    self.metadata = self._value(value_event, "the metadata")
                else:
                    _skip(value_event, self._events)
                self._place = "after the metadata"
            elif key == WRAPPER_KEY and not wrapped and value_event == "start_map":
                yield from self._object_sections(wrapped=True)
            elif key == "options" and not wrapped:
                _skip(value_event, self._events)
            elif value_event == "start_array":
                section = Section(key, self._records(key), None)
                yield section
                for _ in section.items:
                    pass
                self._place = f"after table {key!r}"
            else:
                raise BackupFileError(
                    self.name,
                    f"not a backup: {key!r} holds {_KIND.get(value_event, value_event)}, "
                    "not an array of records",
                    table=key,
                )

    def _records(self, table: str) -> Iterator[dict[str, Any]]:
        index = 1  # the record being read, for the parser's errors
        try:
            for event, _ in self._events:
                if event == "end_array":
                    return
                if event != "start_map":
                    raise BackupFileError(
                        self.name,
                        f"record #{index} is {_KIND.get(event, event)}, not an object",
                        table=table,
                    )
                yield self._value(event, f"record #{index}", table, unique=True)
                index += 1
        except _Unplaced as exc:
            raise BackupFileError(self.name, f"record #{index}: {exc.reason}", table=table) from exc

    def _value(self, first: str, what: str, table: str | None = None, *, unique: bool = False) -> Any:
        try:
            return _build(first, self._events, self._watch, unique=unique)
        except _ValueTooLong as exc:
            reason = f"{what} is longer than {describe_size(exc.cap)}, far past any real record"
        except _TooDeep:
            reason = f"{what} is nested more than {MAX_DEPTH:,} deep, far past any real record"
        except _DuplicateKey as exc:  # which value is meant? (the line layout: a record error)
            raise BackupFileError(
                self.name, f"{what} names the key {_shown(exc.key)} twice", table=table
            ) from None
        raise BackupFileError(self.name, f"{reason}: the file is damaged or is not a backup", table=table)
