"""Lanes: one table's columnar batches written on several connections at once, committed in
the file's order.

Batch k goes to lane k mod n: a thread with a connection and a transaction of its own (the
database then works on n cores, as `pg_restore -j` makes it). A lane writes its batch, waits
until the batch before it has committed (that batch's `Gate`), and only then commits. So what
is committed is always the file's records up to some batch, and the checkpoint, a resume and
the counts are those of one connection. A batch whose predecessor did not commit is rolled
back and handed back held, to be written again once the ones before it are in.

Two lanes can wait for each other only over a key that two batches share (a file that names
a key twice): the later batch's lane holds the row, the earlier one's write waits for it, and
the later one waits for the earlier one's commit. Each lane's statements give up after
`LOCK_WAIT_SECONDS` (`Dialect.limit_lock_waits`): the earlier batch is then refused, every
later one held, and the row path writes the refused batch alone and says what it found.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ..dberrors import raised_by_driver
from ..dialects import Dialect, Outcome
from ..dialects.arrow_base import BatchRefused

LOCK_WAIT_SECONDS = 5.0


class Gate:
    """Whether a batch committed, for the batch after it to wait on."""

    def __init__(self, committed: bool | None = None) -> None:
        self._done = threading.Event()
        self._committed = False
        if committed is not None:
            self.open(committed)

    def open(self, committed: bool) -> None:
        self._committed = committed
        self._done.set()

    def wait(self, stopping: threading.Event) -> bool:
        """True once the batch committed; False if it did not, or the table is being left."""
        while not self._done.wait(0.05):
            if stopping.is_set():
                return False
        return self._committed


@dataclass(frozen=True)
class Written:
    """What a lane did with a batch: committed it (`outcome`), had it refused by the database
    (`refused`: the row path finds out why), or - neither - held it back uncommitted because
    the batch before it did not commit."""

    outcome: Outcome | None = None
    refused: BaseException | None = None
    lost: bool = False
    """The lane could not connect: the rest goes over the restore's own connection."""


class Lane:
    """One connection and the thread that writes on it."""

    def __init__(self, dialect: Dialect, name: str) -> None:
        self.dialect = dialect
        self.conn: Any = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(
        self, write: Callable[[Any], Outcome], before: Gate, stopping: threading.Event
    ) -> tuple[Future[Written], Gate]:
        mine = Gate()
        return self._pool.submit(self._run, write, before, mine, stopping), mine

    def _run(
        self, write: Callable[[Any], Outcome], before: Gate, mine: Gate, stopping: threading.Event
    ) -> Written:
        committed = False
        try:
            try:
                conn = self._connection()
            except Exception as exc:
                if not raised_by_driver(exc):
                    raise
                return Written(refused=exc, lost=True)
            try:
                self.dialect.begin(conn)
                outcome = write(conn)
            except Exception as exc:
                self._drop()  # a dropped connection rolls back, even one the server lost
                if raised_by_driver(exc) or isinstance(exc, BatchRefused):
                    return Written(refused=exc)
                raise
            if not before.wait(stopping):
                self._rollback()
                return Written()
            try:
                self.dialect.commit(conn)
            except Exception as exc:
                self._drop()
                if raised_by_driver(exc):
                    return Written(refused=exc)
                raise
            committed = True
            return Written(outcome=outcome)
        finally:
            mine.open(committed)

    def _connection(self) -> Any:
        if self.conn is None:
            conn = self.dialect.connect()
            try:
                self.dialect.limit_lock_waits(conn, LOCK_WAIT_SECONDS)
            except Exception:
                self.dialect.release(conn)
                raise
            self.conn = conn
        return self.conn

    def _rollback(self) -> None:
        try:
            self.dialect.rollback(self.conn)
        except Exception:
            self._drop()

    def _drop(self) -> None:
        if self.conn is not None:
            with suppress(Exception):
                self.dialect.release(self.conn)
            self.conn = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._drop()


class Lanes:
    """The restore's lanes (connections made on first use, kept from table to table), and the
    chain of gates that keeps their commits in order."""

    def __init__(self, dialect: Dialect, jobs: int) -> None:
        self.dialect = dialect
        self._lanes = [Lane(dialect, f"rowvault-lane{i}") for i in range(jobs)]
        self.stopping = threading.Event()
        """Set when the table is being left: batches waiting for their turn roll back."""
        self._next = 0
        self._last = Gate(committed=True)

    def __len__(self) -> int:
        return len(self._lanes)

    def submit(self, write: Callable[[Any], Outcome]) -> Future[Written]:
        """`write(conn)` in a transaction on the next lane, committed after the batch submitted
        before it."""
        lane = self._lanes[self._next % len(self._lanes)]
        self._next += 1
        future, self._last = lane.submit(write, self._last, self.stopping)
        return future

    def restart(self) -> None:
        """Nothing is in flight (every batch so far is committed or written another way): the
        next batch commits without waiting."""
        self._last = Gate(committed=True)
        self.stopping.clear()

    def close(self) -> None:
        self.stopping.set()
        for lane in self._lanes:
            lane.close()
