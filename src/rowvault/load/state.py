"""What a restore remembers across batches: the keys of failed rows (to skip their children),
foreign-key values held back for cycles (on disk until every table is in), and the copies of
rows a table without a key already holds."""

from __future__ import annotations

import pickle
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import IO, Any

from ..dialects import Row


class Failures:
    """Key values of the rows that failed, so their children can be skipped by name."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]] = defaultdict(set)

    def add(self, table: str, columns: tuple[str, ...], key: tuple[Any, ...]) -> None:
        self._keys[(table, columns)].add(frozen(key))

    def get(self, table: str, columns: tuple[str, ...]) -> set[tuple[Any, ...]] | None:
        return self._keys.get((table, columns))


def frozen(value: Any) -> Any:
    """`value` as something a set can hold: a key the file spelled as an array or an object
    (a record error already) must not stop the restore."""
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), frozen(v)) for k, v in value.items()))
    return value


class DeferredWrites:
    """Foreign-key values held back to break cycles, on disk until every table is in."""

    def __init__(self) -> None:
        self._spools: dict[str, IO[bytes]] = {}

    def add(self, table: str, key: Row, values: Row, record: Any) -> None:
        spool = self._spools.get(table)
        if spool is None:
            spool = self._spools[table] = tempfile.TemporaryFile()
        pickle.dump((key, values, record), spool, protocol=pickle.HIGHEST_PROTOCOL)

    def entries(self, table: str) -> Iterator[tuple[Row, Row, Any]]:
        spool = self._spools.get(table)
        if spool is None:
            return
        spool.seek(0)
        while True:
            try:
                yield pickle.load(spool)
            except EOFError:
                return

    def close(self) -> None:
        for spool in self._spools.values():
            spool.close()
        self._spools.clear()


class Copies:
    """A table without a key restores to the same multiset of rows as the backup.

    Rows are counted, not matched: the n-th copy of a row in the file goes in only if the
    table holds fewer than n copies of it. Per batch: its distinct rows, how many copies of
    each the table holds (`Dialect.count_copies`) and how many earlier batches of this run
    brought (`seen`, by the row's hash, counted once their transaction committed); the
    missing copies go in with plain inserts. A second restore of the same file so inserts
    nothing, and copies the table holds beyond the backup's are left alone (unchanged).
    """

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self._pending: dict[int, int] = {}

    def missing(self, rows: list[Row], count: Callable[[list[Row]], list[int]]) -> list[Row]:
        """The copies of `rows` the table lacks; `count` says how many it holds of each."""
        groups = _distinct(rows)
        held = count([row for _, row, _ in groups])
        seen = self.seen
        pending: dict[int, int] = {}
        add: list[Row] = []
        for (key, row, n), have in zip(groups, held, strict=True):
            h = hash(key)
            wanted = min(n, seen.get(h, 0) + n - have)
            if wanted > 0:
                add.extend(repeat(row, wanted))
            pending[h] = pending.get(h, 0) + n
        self._pending = pending
        return add

    def committed(self, rows: int = 0) -> None:
        """The batch `missing` last looked at is in: its rows count as seen."""
        self._merge(self._pending)
        self._pending = {}

    def tally(self, rows: list[Row]) -> None:
        """Rows an earlier run of the restore wrote (resuming): they count as seen."""
        counts: dict[int, int] = {}
        for key, _, n in _distinct(rows):
            counts[hash(key)] = counts.get(hash(key), 0) + n
        self._merge(counts)

    def _merge(self, counts: dict[int, int]) -> None:
        seen = self.seen
        for h, n in counts.items():
            seen[h] = seen.get(h, 0) + n


def _distinct(rows: list[Row]) -> list[tuple[Any, Row, int]]:
    """(key, row, copies) per distinct row; the key is the row, or its pickle when it holds
    a list (an array column), so one row has one key whatever batch it is in."""
    try:
        return [(row, row, n) for row, n in Counter(rows).items()]
    except TypeError:
        pass
    groups: dict[Any, list[Any]] = {}
    for row in rows:
        try:
            key: Any = row
            hash(key)
        except TypeError:
            key = pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)
        group = groups.setdefault(key, [row, 0])
        group[1] += 1
    return [(key, row, n) for key, (row, n) in groups.items()]
