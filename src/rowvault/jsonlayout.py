"""Read backups in any valid JSON layout, incrementally (ijson's C backend).

This is the fallback for files rowvault did not write in its line layout: pretty-printed
files, single-line files, the original feature's exports, or an HTTP body of the form
`{"backupData": {...}}`. Records are built one at a time, so memory stays flat.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any

import ijson
from ijson.common import ObjectBuilder

from .errors import BackupFileError
from .fileformat import Section, read_failure
from .limits import MAX_LINE_BYTES, describe_size

WRAPPER_KEY = "backupData"
FEED_BYTES = 64 << 10
"""What the parser is fed at a time while events come."""
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
    events = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events, use_float=True)
    quiet = 0  # bytes fed since the last event
    try:
        while data := stream.read(max(FEED_BYTES, min(quiet, max_value + 1 - quiet))):
            watch.fed += len(data)
            if 0 <= watch.since < watch.fed - max_value:
                raise _ValueTooLong(max_value)
            parser.send(data)
            if events:
                quiet = 0
                yield events  # read to its end before this generator resumes
                del events[:]
                continue
            quiet += len(data)
            if quiet > max_value:
                raise BackupFileError(
                    name,
                    f"more than {describe_size(max_value)} without a complete JSON value (by byte "
                    f"{watch.fed:,}), far past any real record: the file is damaged or is not a backup",
                )
        parser.close()
        yield events
    except ijson.IncompleteJSONError as exc:
        text = str(exc)
        if "premature EOF" in text or "incomplete" in text.lower():
            raise BackupFileError(name, "the JSON ends early: the file is truncated") from exc
        raise BackupFileError(name, f"not valid JSON ({_short(text)})") from exc
    except ijson.JSONError as exc:
        raise BackupFileError(name, f"not valid JSON ({_short(str(exc))})") from exc
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise read_failure(name, exc) from exc


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


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "parse error"
    return first[:200]


def _build(first: str, events: Iterator[Event], watch: _Watch) -> Any:
    """Build the value that starts with event `first` (a map or an array), watched by the
    events' reader: one past its cap raises _ValueTooLong rather than take gigabytes."""
    builder = ObjectBuilder()
    builder.event(first, None)
    depth = 1
    watch.since = watch.fed
    for event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                break
    watch.since = -1
    return builder.value


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
        yield from self._object_sections(wrapped=False)
        for _ in self._events:  # ijson reports trailing garbage only if we read on
            pass

    def _object_sections(self, *, wrapped: bool) -> Iterator[Section]:
        for event, key in self._events:
            if event == "end_map":
                return
            assert event == "map_key"
            value_event, _ = next(self._events)
            if key == "metadata":
                if value_event == "start_map":
                    self.metadata = self._value(value_event, "the metadata")
                else:
                    _skip(value_event, self._events)
            elif key == WRAPPER_KEY and not wrapped and value_event == "start_map":
                yield from self._object_sections(wrapped=True)
            elif key == "options" and not wrapped:
                _skip(value_event, self._events)
            elif value_event == "start_array":
                section = Section(key, self._records(key), None)
                yield section
                for _ in section.items:
                    pass
            else:
                raise BackupFileError(
                    self.name,
                    f"not a backup: {key!r} holds {_KIND.get(value_event, value_event)}, "
                    "not an array of records",
                    table=key,
                )

    def _records(self, table: str) -> Iterator[dict[str, Any]]:
        for index, (event, _) in enumerate(self._events, start=1):
            if event == "end_array":
                return
            if event != "start_map":
                raise BackupFileError(
                    self.name,
                    f"record #{index} is {_KIND.get(event, event)}, not an object",
                    table=table,
                )
            yield self._value(event, f"record #{index}", table)

    def _value(self, first: str, what: str, table: str | None = None) -> Any:
        try:
            return _build(first, self._events, self._watch)
        except _ValueTooLong as exc:
            raise BackupFileError(
                self.name,
                f"{what} is longer than {describe_size(exc.cap)}, far past any real record: "
                "the file is damaged or is not a backup",
                table=table,
            ) from None
