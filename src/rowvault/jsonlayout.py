"""Read backups in any valid JSON layout, incrementally (ijson's C backend).

This is the fallback for files rowvault did not write in its line layout: pretty-printed
files, single-line files, the original feature's exports, or an HTTP body of the form
`{"backupData": {...}}`. Records are built one at a time, so memory stays flat.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import IO, Any

import ijson
from ijson.common import ObjectBuilder

from .errors import BackupFileError
from .fileformat import Section, read_failure

WRAPPER_KEY = "backupData"
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


def _events(stream: IO[bytes], name: str) -> Iterator[Event]:
    try:
        yield from ijson.basic_parse(stream, use_float=True)
    except ijson.IncompleteJSONError as exc:
        text = str(exc)
        if "premature EOF" in text or "incomplete" in text.lower():
            raise BackupFileError(name, "the JSON ends early: the file is truncated") from exc
        raise BackupFileError(name, f"not valid JSON ({_short(text)})") from exc
    except ijson.JSONError as exc:
        raise BackupFileError(name, f"not valid JSON ({_short(str(exc))})") from exc
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise read_failure(name, exc) from exc


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "parse error"
    return first[:200]


def _build(first: str, events: Iterator[Event]) -> Any:
    """Build the value that starts with event `first` (a map or an array)."""
    builder = ObjectBuilder()
    builder.event(first, None)
    depth = 1
    for event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                break
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

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.name = name
        self.metadata: dict[str, Any] | None = None
        self._events = _events(stream, name)

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
                    self.metadata = _build(value_event, self._events)
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
            yield _build(event, self._events)
