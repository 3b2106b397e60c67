"""Read rowvault's line layout in blocks of about a megabyte, never a line at a time.

Inside a table the records are the lines between `"name":[` and `]`, separated by `,\\n`;
records never hold a raw newline (JSON escapes it). So a block is split into records with one
`bytes.split` and checked with a few `bytes.count` calls, all at C speed; only the rare
structural lines are looked at one by one. Decompression runs on a background thread (zlib
releases the GIL), so it overlaps with the parsing and writing of the previous block.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from itertools import chain
from typing import IO, cast

import orjson
from isal import isal_zlib

from ..errors import BackupFileError
from ..handoff import Handoff
from .limits import MAX_LINE_BYTES, describe_size

BLOCK = 1 << 20
ZLIB_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast(type[Exception], isal_zlib.error))
"""What zlib, or ISA-L's zlib-compatible gunzip (`fileformat.GunzipStream`), raise for
damaged data."""
_FAILURES: tuple[type[Exception], ...] = (EOFError, OSError, *ZLIB_ERRORS)


class LineTooLong(Exception):
    """An unfinished line passed the cap. Raised by `blocks`, which knows no line numbers;
    the reader turns it into a BackupFileError naming the line."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the line is longer than {describe_size(limit)}, far past any real record: "
            "the file is damaged or is not a backup"
        )


def blocks(stream: IO[bytes], size: int = BLOCK, *, max_line: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Chunks of the stream that end at a line boundary (the last one may not).

    A line longer than a block is kept as a list of pieces and joined once, so reading stays
    linear whatever the line's length. A line past `max_line` raises LineTooLong as soon as
    the cap is passed, holding no more than the cap and one block. Blocks are never longer
    than the cap, so only a line spread over several blocks needs measuring."""
    size = min(size, max_line)
    pieces: list[bytes] = []
    held = 0  # bytes of the unfinished line in `pieces`
    while True:
        data = stream.read(size)
        if not data:
            if pieces:
                yield b"".join(pieces)
            return
        cut = data.rfind(b"\n")
        if cut < 0:
            held += len(data)
            if held > max_line:
                raise LineTooLong(max_line)
            pieces.append(data)
            continue
        if pieces:
            if held + data.find(b"\n") > max_line:
                raise LineTooLong(max_line)
            pieces.append(data[: cut + 1])
            yield b"".join(pieces)
        else:
            yield data[: cut + 1]
        rest = data[cut + 1 :]
        pieces = [rest] if rest else []
        held = len(rest)


def in_background(source: Iterator[bytes], depth: int = 4) -> Iterator[bytes]:
    """Run `source` on a thread, `depth` blocks ahead of the consumer."""

    def produce(handoff: Handoff[bytes]) -> None:
        for item in source:
            if not handoff.put(item):
                return

    return Handoff[bytes](depth).run(produce, "rowvault-reader")


class LineReader:
    """Walks the line layout: structural lines one at a time, records a region at a time."""

    def __init__(self, chunks: Iterator[bytes], name: str) -> None:
        self.name = name
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self.lineno = 1  # the line that starts at the current position
        self.region_lines = 0  # lines in the region last yielded
        self.region_checked = False
        """Whether the region last yielded is known to hold records only (`check_region`)."""

    def _fill(self) -> bool:
        if self._pos < len(self._buf):
            return True
        try:
            for chunk in self._chunks:
                if chunk:
                    self._buf = chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
                    self._pos = 0
                    return True
        except LineTooLong as exc:  # every line before it was consumed: it is `lineno`
            raise BackupFileError(self.name, str(exc), line=self.lineno) from None
        return False

    def line(self) -> tuple[bytes, bool] | None:
        """The next line, stripped, and whether it ended with a newline; None at the end."""
        if not self._fill():
            return None
        end = self._buf.find(b"\n", self._pos)
        complete = end >= 0
        if not complete:
            end = len(self._buf)
        text = self._buf[self._pos : end]
        self._pos = end + 1
        self.lineno += 1
        return text.strip(), complete

    def regions(self, table: str, *, check: bool = False) -> Iterator[bytes]:
        """The record lines of the current table, a block at a time, up to its `]` line.
        Each region holds whole lines, each ending in a newline.

        `check`: first ask whether the rest of the block is records only, every line starting
        with `{` (two counts, at C speed, that `check_region` would make anyway); then the
        table's end cannot be in it and is not searched for (`region_checked`)."""
        while True:
            if not self._fill():
                raise BackupFileError(
                    self.name, "the file ends inside the table: it is truncated", table=table
                )
            buf, pos = self._buf, self._pos
            if buf.startswith(b"]", pos):
                self.line()
                return
            if check and buf.startswith(b"{", pos) and buf.endswith(b"\n"):
                lines = buf.count(b"\n", pos)
                if buf.count(b"\n{", pos) == lines - 1:
                    region = buf[pos:] if pos else buf
                    self._buf, self._pos = b"", 0
                    del buf
                    self.region_lines, self.region_checked = lines, True
                    self.lineno += lines
                    handed = [region]
                    del region
                    yield handed.pop()
                    continue
            self.region_checked = False
            end = buf.find(b"\n]", pos)
            stop = len(buf) if end < 0 else end + 1
            region = buf[pos:stop]
            if stop == len(buf):  # let the block go with its last region (a long record is big)
                self._buf, self._pos = b"", 0
            elif len(region) > BLOCK:
                self._buf, self._pos = buf[stop:], 0
            else:
                self._pos = stop
            del buf
            if not region.endswith(b"\n"):
                raise BackupFileError(
                    self.name,
                    "the file ends in the middle of a record: it is truncated",
                    line=self.lineno,
                    table=table,
                )
            self.region_lines = region.count(b"\n")
            self.lineno += self.region_lines
            handed = [region]
            del region
            yield handed.pop()  # not kept in this frame while the consumer splits it


def check_region(
    region: bytes, lines: int, first_line: int, name: str, table: str, *, checked: bool = False
) -> int:
    """Check that each of the region's `lines` lines starts a record; return the count.
    `checked`: the reader found so already (`LineReader.regions(check=True)`).

    A line that starts like a record but is not valid JSON is left to the write pass, which
    reports it as a record error; damage elsewhere shows in the gzip CRC or the counts."""
    ok = checked or (region.startswith(b"{") and region.count(b"\n{") == lines - 1)
    if not ok:
        for offset, line in enumerate(region.split(b"\n")[:-1]):
            text = line.strip()
            if not (text.startswith(b"{") and (text.endswith(b"}") or text.endswith(b"},"))):
                raise BackupFileError(
                    name,
                    "expected a record or the end of the table (the file is damaged)",
                    line=first_line + offset,
                    table=table,
                )
    return lines


def split_region(region: bytes) -> list[bytes]:
    """The records of a region, without their separating commas."""
    if region.endswith(b",\n"):
        return region[:-2].split(b",\n")
    return region[:-1].split(b",\n")


def table_name(line: bytes, name: str, lineno: int) -> str:
    """The table of a `"name":[` line."""
    try:
        table = orjson.loads(line[:-2].lstrip(b","))
    except orjson.JSONDecodeError:
        table = None
    if not isinstance(table, str):
        shown = line[:40].decode("utf-8", "replace") + ("..." if len(line) > 40 else "")
        raise BackupFileError(
            name, f"expected a table's name (a JSON string in UTF-8), found {shown!r}", line=lineno
        )
    return table


def records(reader: LineReader, table: str) -> Iterator[bytes]:
    """The table's records one by one (for `itertools.islice`), read a region at a time."""
    return chain.from_iterable(map(split_region, reader.regions(table)))


def guarded(chunks: Iterator[bytes], translate: Callable[[BaseException], Exception]) -> Iterator[bytes]:
    """Decompression and I/O errors become the file's own error, block by block."""
    try:
        yield from chunks
    except _FAILURES as exc:
        raise translate(exc) from exc


def line_reader(
    stream: IO[bytes],
    name: str,
    *,
    compressed: bool,
    translate: Callable[[BaseException], Exception],
    max_line: int = MAX_LINE_BYTES,
) -> LineReader:
    """A reader positioned after the metadata line (which the caller has read)."""
    chunks = guarded(blocks(stream, max_line=max_line), translate)
    reader = LineReader(in_background(chunks) if compressed else chunks, name)
    reader.lineno = 2
    return reader
