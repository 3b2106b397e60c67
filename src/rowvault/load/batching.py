"""Batch sizing and the transaction of one batch.

Without a fixed size each batch is sized to take about 200 ms: large enough that per-batch
overhead (a commit, a round trip) stays small, small enough that progress moves several
times a second on fast and slow databases alike.
"""

from __future__ import annotations

from typing import Any

from ..dialects import Dialect

INITIAL_BATCH = 1000
MIN_BATCH = 50
MAX_BATCH = 10_000


class BatchSizer:
    def __init__(self, fixed: int | None = None, *, target_seconds: float = 0.2) -> None:
        self.fixed = fixed
        self.target = target_seconds
        self._per_record: float | None = None

    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self._per_record is None:
            return INITIAL_BATCH
        wanted = int(self.target / max(self._per_record, 1e-7))
        return max(MIN_BATCH, min(MAX_BATCH, wanted))

    def record(self, records: int, seconds: float) -> None:
        """Learn from a batch that went through without failures."""
        if records <= 0 or seconds <= 0:
            return
        sample = seconds / records
        if self._per_record is None:
            self._per_record = sample
        else:  # weight recent batches, but do not jump on one slow commit
            self._per_record = 0.6 * self._per_record + 0.4 * sample


class Transactions:
    """One transaction per batch; in a dry run, one savepoint per batch inside an outer
    transaction that is rolled back at the end."""

    def __init__(self, dialect: Dialect, conn: Any, *, dry_run: bool) -> None:
        self.dialect = dialect
        self.conn = conn
        self.dry_run = dry_run

    def start(self) -> None:
        if self.dry_run:
            self.dialect.begin(self.conn)

    def finish(self) -> None:
        if self.dry_run:
            self.dialect.rollback(self.conn)

    def begin(self) -> None:
        if self.dry_run:
            self.dialect.savepoint(self.conn, "rowvault_batch")
        else:
            self.dialect.begin(self.conn)

    def commit(self) -> None:
        if self.dry_run:
            self.dialect.release_savepoint(self.conn, "rowvault_batch")
        else:
            self.dialect.commit(self.conn)

    def rollback(self) -> None:
        if self.dry_run:
            self.dialect.rollback_savepoint(self.conn, "rowvault_batch")
            self.dialect.release_savepoint(self.conn, "rowvault_batch")
        else:
            self.dialect.rollback(self.conn)
