"""What the PostgreSQL and MariaDB fast backup paths share: a record's line built by the
database, and what it does not build done by the row path's own encoder.

The database writes each row's line in pieces, with the text of each JSON document between
two: a document is written as the row path writes it (read by the driver's loader, then
`RowEncoder.value`), once per distinct text of up to 1 KB (`JSON_CACHE`), and put in its
place. JSON needs it: orjson's reading of a document merges repeated keys and respells
numbers and escapes, which no SQL function does the same way.

A row whose every other value the database provably writes as the row path would starts
with its line's first piece, `{...`. Any other row comes as a JSON array (`[...`) of what
the row path would have read from the driver, each value in the driver's own wire form
(a JSON column's place empty: its document is fetched beside it in any case); the
dialect's module turns it into the driver's values (`decode(array, documents)`) and the
row path encodes them. `[` sorts before `{`, so one `min()` of a batch's first pieces, at
C speed, tells whether it holds such a row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ..backuprows import RowEncoder

Row = tuple[Any, ...]
Decode = Callable[[list[Any], list[Any]], Row]
"""A fallback row's array and its JSON documents (as fetched) -> the driver's values."""
JSON_CACHE = 4096
"""Distinct JSON documents (of up to 1 KB) whose line fragment is kept per column."""
_ARRAY = ord("[")


def key_text(name: str) -> str:
    """A column's name as the row path writes it as a key, followed by its colon."""
    return orjson.dumps(name).decode() + ":"


def concat_parts(
    pieces: Sequence[Sequence[tuple[str, str]]], literal: Callable[[str], str]
) -> list[list[str]]:
    """The arguments of each CONCAT that writes a part of `{"key":value,...}`, from lists of
    (key, value SQL); a JSON document (its value SQL empty) goes between a part and the next."""
    parts: list[list[str]] = []
    first = True
    for group in pieces:
        args: list[str] = []
        text = ""
        for key, value in group:
            text += ("{" if first else ",") + key_text(key)
            first = False
            if value:
                args += [literal(text), value]
                text = ""
        parts.append([*args, literal(text)] if text or not args else args)
    parts[-1].append(literal("}" if not first else "{}"))
    return parts


class _Documents:
    """One JSON column's documents as the row path writes them, the frequent ones kept."""

    def __init__(self, encode: Callable[[Any], bytes]) -> None:
        self.encode = encode
        self.cache: dict[Any, bytes] = {None: b"null"}

    def miss(self, doc: Any) -> bytes:
        found = self.encode(doc)
        if len(doc) <= 1024:
            if len(self.cache) >= JSON_CACHE:
                self.cache = {None: b"null"}
            self.cache[doc] = found
        return found


class LineBuilder:
    """A batch of fetched rows (line pieces and documents, see above) as lines."""

    def __init__(
        self,
        rows: RowEncoder,
        decode: Decode,
        documents: Sequence[Callable[[Any], bytes]],
    ) -> None:
        self.rows = rows
        self.decode = decode
        self.documents = [_Documents(encode) for encode in documents]

    def lines(self, fetched: list[Any]) -> list[bytes]:
        firsts = [row[0] for row in fetched]
        fallback = bool(firsts) and min(firsts)[0] == _ARRAY
        if not self.documents:
            batch = firsts
        elif len(self.documents) == 1:
            batch = self._one(fetched)
        else:
            batch = [self._joined(row) for row in fetched]
        if fallback:
            self._refill(batch, fetched)
        return batch

    def _one(self, fetched: list[Any]) -> list[bytes]:
        get, miss = self.documents[0].cache.get, self.documents[0].miss
        return [a + (get(d) or miss(d)) + b for a, d, b in fetched]

    def _joined(self, row: Sequence[Any]) -> bytes:
        pieces = [row[0]]
        for i, docs in enumerate(self.documents):
            doc = row[2 * i + 1]
            pieces += [docs.cache.get(doc) or docs.miss(doc), row[2 * i + 2]]
        return b"".join(pieces)

    def _refill(self, batch: list[bytes], fetched: list[Any]) -> None:
        at = [i for i, row in enumerate(fetched) if row[0][0] == _ARRAY]
        decoded = [self.decode(orjson.loads(fetched[i][0]), list(fetched[i][1::2])) for i in at]
        encoded = self.rows.encode(decoded)
        for i, line in zip(at, encoded, strict=True):
            batch[i] = line
