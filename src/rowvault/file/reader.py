"""Open a backup, check it end to end without writing anything, then stream its sections.

`BackupFile.scan()` is the cheap validation pass: for rowvault's own layout it decompresses
the file (which checks gzip's CRC), checks the line structure and counts the records of each
table against the metadata, without parsing the records themselves; a record that is not
valid JSON is caught by the write pass and reported as a record error. Files in any other
layout are parsed incrementally, collecting each table's column names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import orjson

from ..errors import BackupFileError
from ..schema import TableSpec
from .format import (
    FORMAT_VERSION,
    METADATA_PREFIX,
    READ_ERRORS,
    REJECT_REASON_KEY,
    Section,
    Source,
    line_sections,
    open_stream,
    read_failure,
    read_metadata_line,
    source_name,
)
from .jsonlayout import JsonLayout, first_member_ends
from .limits import ReadLimits
from .linelayout import LineTooLong, check_region, line_reader, split_region, table_name
from .sniff import UTF8_BOM, looks_like_json, not_a_backup

Layout = Literal["lines", "json"]
_READ_ERRORS = READ_ERRORS
ScanProgress = Callable[[int, int | None], None]
"""Told how far the scan is: bytes of the file read (compressed bytes for gzip), of its size
(None when a stream's size cannot be known)."""
SCAN_REPORT_SECONDS = 0.1


@dataclass
class TableSummary:
    name: str
    count: int = 0
    keys: set[str] | None = None
    first_line: int | None = None


@dataclass
class FileSummary:
    """What the validation pass learned: layout, metadata, and each table in file order."""

    name: str
    layout: Layout
    compressed: bool
    metadata: dict[str, Any] | None
    tables: dict[str, TableSummary] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(t.count for t in self.tables.values())

    @property
    def source_dialect(self) -> str | None:
        dialect = (self.metadata or {}).get("dialect")
        return dialect if isinstance(dialect, str) else None

    def spec(self, table: str) -> TableSpec | None:
        """The table's description from the metadata, if the file carries one."""
        described = described_tables(self.metadata).get(table)
        if not isinstance(described, dict) or not described.get("columns"):
            return None
        return TableSpec.from_dict(table, described)

    def to_dict(self) -> dict[str, Any]:
        """For handing a checked file to another process (a job's worker) without a rescan."""
        return {
            "name": self.name,
            "layout": self.layout,
            "compressed": self.compressed,
            "metadata": self.metadata,
            "tables": [
                {
                    "name": t.name,
                    "count": t.count,
                    "keys": sorted(t.keys) if t.keys is not None else None,
                    "firstLine": t.first_line,
                }
                for t in self.tables.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileSummary:
        summary = cls(data["name"], data["layout"], bool(data["compressed"]), data.get("metadata"))
        for t in data["tables"]:
            keys = set(t["keys"]) if t.get("keys") is not None else None
            summary.tables[t["name"]] = TableSummary(t["name"], int(t["count"]), keys, t.get("firstLine"))
        return summary

    def columns(self, table: str) -> list[str]:
        spec = self.spec(table)
        if spec is not None:
            return spec.column_names
        keys = self.tables[table].keys or set()
        return sorted(keys - {REJECT_REASON_KEY})


class BackupFile:
    """A backup file (or seekable stream) that can be read more than once, within `limits`
    (default: lines up to 64 MiB, no cap on decompression) by its scan and its sections."""

    def __init__(self, source: Source, *, name: str | None = None, limits: ReadLimits | None = None) -> None:
        self.source = source
        self.name = name or source_name(source)
        """How messages call the file (an upload's own name rather than where it was saved)."""
        self.limits = limits or ReadLimits()

    @contextmanager
    def _open(self) -> Iterator[tuple[IO[bytes], bool]]:
        if not isinstance(self.source, (str, os.PathLike)):
            self.source.seek(0)
        try:
            stream, compressed = open_stream(self.source, limits=self.limits, name=self.name)
        except _READ_ERRORS as exc:
            raise read_failure(self.name, exc) from exc
        try:
            _skip_bom(stream)
        except _READ_ERRORS as exc:
            raise read_failure(self.name, exc) from exc
        try:
            yield stream, compressed
        finally:
            if stream is not self.source:
                with suppress(Exception):
                    stream.close()

    def _first_line(self, stream: IO[bytes]) -> bytes:
        """The first line, read up to just past the cap. Longer than the cap, it is an error
        only if it is rowvault's metadata line: a document of another layout may be one long
        line, and then its first member (its metadata) ends early in it."""
        cap = self.limits.max_line_bytes
        try:
            first = stream.readline(cap + 1)
        except _READ_ERRORS as exc:
            raise read_failure(self.name, exc) from exc
        too_long = len(first) > cap and not first.endswith(b"\n")
        if too_long and first.lstrip().startswith(METADATA_PREFIX) and not first_member_ends(first):
            raise BackupFileError(self.name, str(LineTooLong(cap)), line=1)
        return first

    def scan(self, progress: ScanProgress | None = None) -> FileSummary:
        """Read the whole file once and check its structure; raises BackupFileError.

        `progress` hears how many bytes of the file were read, about ten times a second and
        once at the end: on a large file the pass takes seconds, and a face shows it moving."""
        meter = _Meter(progress, self.source)
        with self._open() as (stream, compressed):
            meter.watch(stream, compressed)
            head = _head(stream, self.name)
            if compressed and not looks_like_json(head):
                raise not_a_backup(self.name, head, compressed=True)
            first = self._first_line(stream)
            if len(first) <= self.limits.max_line_bytes and not first.strip():
                raise BackupFileError(self.name, "the file is empty: it is not a backup")
            metadata = read_metadata_line(first)
            if metadata is not None:
                summary = FileSummary(self.name, "lines", compressed, metadata)
                self._scan_lines(stream, summary, meter)
            else:
                summary = FileSummary(self.name, "json", compressed, None)
        if summary.layout == "json":
            self._scan_json(summary, meter)
        self._check_metadata(summary)
        meter.finish()
        return summary

    def _scan_lines(self, stream: IO[bytes], summary: FileSummary, meter: _Meter) -> None:
        name = self.name
        reader = line_reader(
            stream,
            name,
            compressed=summary.compressed,
            translate=lambda e: read_failure(name, e),
            max_line=self.limits.max_line_bytes,
        )
        closed = False
        while (item := reader.line()) is not None:
            meter.tick()
            line, complete = item
            lineno = reader.lineno - 1
            if closed:
                if line:
                    raise BackupFileError(name, "unexpected data after the end", line=lineno)
            elif line == b"}":
                closed = True
            elif line.endswith(b":["):
                table = self._table_header(line, lineno, summary)
                for region in reader.regions(table.name, check=True):
                    start = (table.first_line or 0) + table.count
                    lines = reader.region_lines
                    checked = reader.region_checked
                    table.count += check_region(region, lines, start, name, table.name, checked=checked)
                    meter.tick()
                    if table.keys is not None:  # no column list in the metadata
                        _collect_keys(table.keys, region)
            elif line and not complete:
                raise BackupFileError(
                    name, "the file ends in the middle of the line: it is truncated", line=lineno
                )
            elif line:
                raise BackupFileError(name, "expected a table or the end", line=lineno)
        if not closed:
            raise BackupFileError(name, "the file ends before its closing '}': it is truncated")

    def _table_header(self, line: bytes, lineno: int, summary: FileSummary) -> TableSummary:
        table = table_name(line, self.name, lineno)
        if table in summary.tables:
            raise BackupFileError(self.name, f"table {table!r} appears twice", line=lineno)
        described = described_tables(summary.metadata).get(table)
        has_columns = isinstance(described, dict) and bool(described.get("columns"))
        summary.tables[table] = TableSummary(
            table, first_line=lineno + 1, keys=None if has_columns else set()
        )
        return summary.tables[table]

    def _scan_json(self, summary: FileSummary, meter: _Meter) -> None:
        with self._open() as (stream, compressed):
            meter.watch(stream, compressed)
            layout = JsonLayout(stream, self.name, max_value=self.limits.max_line_bytes)
            for section in layout.sections():
                if section.name in summary.tables:
                    raise BackupFileError(self.name, f"table {section.name!r} appears twice")
                table = summary.tables[section.name] = TableSummary(section.name, keys=set())
                keys = table.keys
                assert keys is not None
                for record in section.items:
                    table.count += 1
                    keys.update(record)
                    if not table.count & 1023:
                        meter.tick()
            summary.metadata = layout.metadata

    def _check_metadata(self, summary: FileSummary) -> None:
        metadata = summary.metadata
        if metadata is None:
            return
        version = metadata.get("version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise BackupFileError(
                self.name,
                f"written by a newer rowvault (format version {version}); this one reads "
                f"up to version {FORMAT_VERSION}",
            )
        described = metadata.get("tables")
        if not isinstance(described, dict):
            return
        for table, info in described.items():
            count = info.get("count") if isinstance(info, dict) else None
            if count is not None and type(count) is not int:
                raise BackupFileError(
                    self.name,
                    f"the metadata's count {_shown(count)} is not a number of records: "
                    "the file is damaged or was edited",
                    table=table,
                )
            if table not in summary.tables:
                if count:
                    raise BackupFileError(
                        self.name,
                        f"the metadata lists {count} records but the file has none",
                        table=table,
                    )
                continue
            found = summary.tables[table].count
            if isinstance(count, int) and count != found:
                raise BackupFileError(
                    self.name,
                    f"the metadata says {count:,} records but the file holds {found:,}: "
                    "the file is damaged or was edited",
                    table=table,
                )

    @contextmanager
    def sections(self, layout: Layout) -> Iterator[Iterator[Section]]:
        """Stream the sections again, for the write pass."""
        with self._open() as (stream, compressed):
            if layout == "lines":
                self._first_line(stream)
                cap = self.limits.max_line_bytes
                yield line_sections(stream, self.name, compressed=compressed, max_line=cap)
            else:
                yield JsonLayout(stream, self.name, max_value=self.limits.max_line_bytes).sections()


class _Meter:
    """How much of the file the scan has read: the position in the file itself (for gzip,
    the compressed bytes the decompressor took in, which may run a few blocks ahead of the
    check on its background thread), told to `hook` every SCAN_REPORT_SECONDS."""

    def __init__(self, hook: ScanProgress | None, source: Source) -> None:
        self.hook = hook
        self.total = _size(source) if hook is not None else None
        self.stream: IO[bytes] | None = None
        self.compressed = False
        self.last = float("-inf")

    def watch(self, stream: IO[bytes], compressed: bool) -> None:
        self.stream, self.compressed = stream, compressed
        self.tick()

    def tick(self) -> None:
        if self.hook is None:
            return
        now = time.monotonic()
        if now - self.last >= SCAN_REPORT_SECONDS:
            self.last = now
            self.hook(self.done(), self.total)

    def finish(self) -> None:
        if self.hook is not None:
            self.hook(self.total if self.total is not None else self.done(), self.total)

    def done(self) -> int:
        stream = self.stream
        if stream is None:
            return 0
        try:
            if self.compressed:
                return int(getattr(getattr(stream, "raw", None), "read_bytes", 0))
            return int(stream.tell())
        except (OSError, ValueError):
            return 0


def _size(source: Source) -> int | None:
    """The file's size in bytes, or None for a stream that cannot tell it."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.stat(source).st_size
        except OSError:
            return None
    try:
        return os.fstat(source.fileno()).st_size
    except (OSError, AttributeError, ValueError, TypeError):
        pass
    try:
        position = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(position)
        return int(end)
    except (OSError, AttributeError, ValueError):
        return None


def described_tables(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The metadata's table descriptions; none when its `tables` is not an object (the
    plan refuses such a metadata, naming it)."""
    described = (metadata or {}).get("tables")
    return described if isinstance(described, dict) else {}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _skip_bom(stream: IO[bytes]) -> None:
    """Step over a UTF-8 byte order mark: some editors save JSON with one."""
    if hasattr(stream, "peek"):
        if stream.peek(len(UTF8_BOM))[: len(UTF8_BOM)] == UTF8_BOM:
            stream.read(len(UTF8_BOM))
        return
    position = stream.tell()
    if stream.read(len(UTF8_BOM)) != UTF8_BOM:
        stream.seek(position)


def _collect_keys(keys: set[str], region: bytes) -> None:
    for line in split_region(region):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the write pass reports it as a record error
        if isinstance(record, dict):
            keys.update(record)


def _head(stream: IO[bytes], name: str, size: int = 512) -> bytes:
    """The first bytes of the (decompressed) stream, left in place for the reader."""
    try:
        if hasattr(stream, "peek"):
            return bytes(stream.peek(size)[:size])
        position = stream.tell()
        head = stream.read(size)
        stream.seek(position)
        return head
    except _READ_ERRORS as exc:
        raise read_failure(name, exc) from exc
