"""Transient failures of the database, waited out and tried again on a new connection.

A connection the server closed or killed, a deadlock, a serialization failure or a lock wait
that timed out says nothing about the records: the same batch on a new connection goes
through. `transient(exc)` names such a failure in rowvault's words; `Retries` waits between
attempts (`first_wait`, doubling, at most `MAX_WAIT_SECONDS`), says so in the progress record
while it waits, and gives up after `attempts` failures in a row. Everything else - a record
the database refuses, a full disk, a bug - is not retried.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from .dberrors import driver_message, raised_by_driver, translate
from .errors import ConnectionLost

DEFAULT_ATTEMPTS = 5
FIRST_WAIT_SECONDS = 0.5
MAX_WAIT_SECONDS = 8.0

_PG_STATES = {
    "40001": "a serialization failure",
    "40P01": "a deadlock",
    "55P03": "a lock timeout",
}
_MYSQL_CODES = {1205: "a lock wait timeout", 1213: "a deadlock"}
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def transient(exc: BaseException) -> str | None:
    """What went wrong, when `exc` is a failure that the same work may survive on a new
    connection a moment later; None otherwise."""
    if not raised_by_driver(exc):
        return None
    error = translate(exc)
    if isinstance(error, ConnectionLost):
        return f"the connection to the database was lost ({error.reason})"
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    state = str(getattr(orig, "sqlstate", None) or "")
    if state in _PG_STATES:
        return f"{_PG_STATES[state]} ({driver_message(orig)})"
    args = orig.args
    if type(orig).__module__.startswith("pymysql") and args and args[0] in _MYSQL_CODES:
        return f"{_MYSQL_CODES[args[0]]} ({driver_message(orig)})"
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return f"the database file is locked ({driver_message(orig)})"
    return None


@dataclass(frozen=True)
class Retrying:
    """The wire shape's `retrying` field: which attempt comes next, and why."""

    attempt: int
    attempts: int
    reason: str
    wait_seconds: float

    def to_dict(self) -> dict[str, object]:
        return {
            "attempt": self.attempt,
            "attempts": self.attempts,
            "reason": self.reason,
            "waitSeconds": round(self.wait_seconds, 2),
        }


class GaveUp(Exception):
    """The failure came back more often than `attempts` allows."""

    def __init__(self, reason: str, attempts: int) -> None:
        self.reason = reason
        self.attempts = attempts
        super().__init__(f"{reason}; gave up after {attempts} retries")


class Retries:
    """Counts failures in a row; `failed` waits before the next attempt or raises GaveUp."""

    def __init__(
        self,
        attempts: int = DEFAULT_ATTEMPTS,
        *,
        first_wait: float = FIRST_WAIT_SECONDS,
        on_change: Callable[[Retrying | None], None] = lambda state: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = attempts
        self.first_wait = first_wait
        self.on_change = on_change
        self.sleep = sleep
        self.failures = 0
        self.total = 0
        """Every failure survived over the whole run (for the result)."""
        self._lock = threading.Lock()

    def failed(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            failures = self.failures
        if failures > self.attempts:
            raise GaveUp(reason, self.attempts)
        self.total += 1
        wait = min(MAX_WAIT_SECONDS, self.first_wait * 2 ** (failures - 1))
        self.on_change(Retrying(failures, self.attempts, reason, wait))
        self.sleep(wait)

    def succeeded(self) -> None:
        if self.failures:
            with self._lock:
                self.failures = 0
            self.on_change(None)
