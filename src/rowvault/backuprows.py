"""The row path of a backup: driver values encoded in Python, one orjson call per record.

Every value a fast path (`dialects/*_dump.py`) cannot prove it writes identically comes here,
so this is both the path of `backup(..., _row_path=True)` and the oracle the fast paths are
tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any

import orjson

from .encoding import Screen, backup_default, backup_encoder, backup_screen
from .errors import BackupAborted
from .schema import TableSpec

Encoder = tuple[int, Callable[[Any], Any]]


class RowEncoder:
    """One table's records as JSON lines. A column with a screen (SQLite: do its values fit
    the declared type? JSON: no long numbers?) gets its full encoder only in the batches that
    fail it."""

    def __init__(self, spec: TableSpec, dialect: str) -> None:
        self.spec = spec
        self.names = spec.column_names
        self.always: list[Encoder] = []
        self.screened: list[tuple[int, Callable[[Any], Any], Screen]] = []
        self.full: list[Callable[[Any], Any] | None] = []
        for i, col in enumerate(spec.columns):
            encoder = backup_encoder(col.type, dialect)
            screen = backup_screen(col.type, dialect)
            self.full.append(encoder)
            if encoder is not None and screen is not None:
                self.screened.append((i, encoder, screen))
            elif encoder is not None:
                self.always.append((i, encoder))
        self.default = backup_default(dialect)

    def encode(self, fetched: Sequence[Any]) -> list[bytes]:
        """A batch of rows (tuples in the order of the table's columns) as JSON lines."""
        encoders = self.always + _screened(fetched, self.screened)
        rows = [_apply(row, encoders) for row in fetched] if encoders else fetched
        names, dumps, default = self.names, orjson.dumps, self.default
        try:
            return [dumps(dict(zip(names, row, strict=True)), default=default) for row in rows]
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise BackupAborted(f"a value cannot be written as JSON ({exc})", table=self.spec.name) from exc

    def value(self, i: int, value: Any) -> bytes:
        """One value of column `i` as its full encoder and orjson write it in a record."""
        encode = self.full[i]
        if encode is not None and value is not None:
            value = encode(value)
        try:
            return orjson.dumps(value, default=self.default)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise BackupAborted(f"a value cannot be written as JSON ({exc})", table=self.spec.name) from exc

    def batches(self, stream: Iterator[list[Any]]) -> Iterator[list[bytes]]:
        for fetched in stream:
            yield self.encode(fetched)


def _screened(
    fetched: Sequence[Any], screened: list[tuple[int, Callable[[Any], Any], Screen]]
) -> list[Encoder]:
    chosen: list[Encoder] = []
    for i, full, (fits, light) in screened:
        encoder = light if fits(list(map(itemgetter(i), fetched))) else full
        if encoder is not None:
            chosen.append((i, encoder))
    return chosen


def _apply(row: Sequence[Any], encoders: list[Encoder]) -> list[Any]:
    values = list(row)
    for i, encode in encoders:
        value = values[i]
        if value is not None:
            values[i] = encode(value)
    return values
