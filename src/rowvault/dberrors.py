"""Driver exceptions, translated once (the pattern of httpx's `map_httpcore_exceptions`).

sqlite3, psycopg, PyMySQL and SQLAlchemy each raise their own exceptions; past this module
rowvault speaks only `errors`. Three ways in:

- `database_errors(url)` around a block - a whole backup, restore or validation
  (`database.opened`), a CLI command - turns whatever the driver raised in it into an error;
- `translate(exc)` where the caller decides itself (a batch the database could not take);
- `raised_by_driver(exc)` tells the database's refusal of a record from a bug in rowvault: only
  the former may become a record error.

    what the driver said                                   becomes
    the connection broke (server closed or killed it)      ConnectionLost
    no space left (SQLITE_FULL, 53100, 1114/1021, ENOSPC)  DiskFull
    a SQLite file that is not a database                   DatabaseError "not a SQLite database"
    no connection could be made                            DatabaseError "cannot connect"
    anything else                                          DatabaseError "the database failed"
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy.exc import DBAPIError

from .errors import ConnectionLost, DatabaseError, DiskFull, RowvaultError

_DRIVER_PACKAGES = frozenset({"sqlite3", "_sqlite3", "psycopg", "psycopg_binary", "psycopg_c", "pymysql"})
_SQLITE_FULL, _SQLITE_NOTADB = 13, 26
_MYSQL_LOST = frozenset({2006, 2013, 2055, 4031})  # gone away, lost during query, ..., idle timeout
_MYSQL_CANNOT_CONNECT = frozenset({2002, 2003, 2005, 1044, 1045, 1049})
_MYSQL_FULL = frozenset({1021, 1114})  # disk full, table is full


@contextmanager
def database_errors(url: str | None = None) -> Iterator[None]:
    """Raise the driver's exceptions from the block as rowvault's (`raise ... from exc`);
    everything else passes unchanged."""
    try:
        yield
    except RowvaultError:
        raise
    except Exception as exc:
        error = translate(exc, url=url)
        if error is None:
            raise
        raise error from exc


def translate(exc: BaseException, *, url: str | None = None) -> RowvaultError | None:
    """The error `exc` stands for, or None when it is not the database's (nor a full disk)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DiskFull(exc.strerror or str(exc), path=exc.filename)
    if not isinstance(exc, _driver_errors()):
        return None
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = driver_message(orig)
    if _disk_full(orig, reason):
        return DiskFull(reason, database=True, url=url)
    if _cannot_connect(orig, reason):
        return cannot_connect(reason, url=url)
    if _connection_lost(exc, orig):
        return ConnectionLost(reason, url=url)
    if isinstance(orig, sqlite3.DatabaseError) and _sqlite_code(orig) == _SQLITE_NOTADB:
        return DatabaseError(f"not a SQLite database ({reason}); check --db", url=url)
    return DatabaseError(f"the database failed: {reason}", url=url)


def cannot_connect(reason: str, *, url: str | None = None) -> DatabaseError:
    return DatabaseError(
        f"cannot connect: {reason}; check that the server is running and the URL "
        "(host, port, user, password, database) is right",
        url=url,
    )


def raised_by_driver(exc: BaseException) -> bool:
    """True for the driver's own exceptions, and for the TypeError, ValueError or
    OverflowError it raises while converting a value it was given; False for anything raised
    by rowvault's code (a bug there is not the record's fault)."""
    if isinstance(exc, _driver_errors()):
        return True
    if not isinstance(exc, (TypeError, ValueError, OverflowError)):
        return False
    module = _innermost_module(exc)
    if module.partition(".")[0] in _DRIVER_PACKAGES:
        return True
    # sqlite3 converts values in C, with no frame of its own: its OverflowError (an integer
    # past 64 bits) and UnicodeEncodeError (a lone surrogate) surface in the dialect's call.
    return module.startswith("rowvault.dialects.") and isinstance(exc, (OverflowError, UnicodeError))


def driver_message(exc: BaseException) -> str:
    """The driver's own words, on one line (PyMySQL's without the error number)."""
    args = exc.args
    numbered = _is_mysql(exc) and len(args) >= 2 and isinstance(args[0], int)
    text = str(args[1]) if numbered else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@cache
def _driver_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [DBAPIError, sqlite3.Error]
    try:
        import psycopg

        found.append(psycopg.Error)
    except ImportError:  # the postgresql extra is not installed
        pass
    try:
        import pymysql

        found.append(pymysql.err.MySQLError)
    except ImportError:  # the mysql extra is not installed
        pass
    return tuple(found)


def _innermost_module(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", ""))


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None  # extended codes keep the primary in the low byte


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", None) or "")


def _mysql_code(exc: BaseException) -> int | None:
    args = exc.args
    return args[0] if _is_mysql(exc) and args and isinstance(args[0], int) else None


def _is_mysql(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("pymysql")


def _disk_full(exc: BaseException, reason: str) -> bool:
    return (
        _sqlite_code(exc) == _SQLITE_FULL
        or _sqlstate(exc) == "53100"
        or _mysql_code(exc) in _MYSQL_FULL
        or "no space left on device" in reason.lower()
    )


def _cannot_connect(exc: BaseException, reason: str) -> bool:
    if _mysql_code(exc) in _MYSQL_CANNOT_CONNECT:
        return True
    return type(exc).__module__.startswith("psycopg") and reason.startswith("connection failed")


def _connection_lost(exc: BaseException, orig: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if _mysql_code(orig) in _MYSQL_LOST:
        return True
    name = type(orig).__name__
    if type(orig).__module__.startswith("pymysql"):
        return name == "InterfaceError"  # PyMySQL's word for a closed connection
    if type(orig).__module__.startswith("psycopg"):
        state = _sqlstate(orig)
        if name == "InterfaceError" or state.startswith(("57P", "08")):
            return True
        return name == "OperationalError" and not state  # the client lost the server
    return False
