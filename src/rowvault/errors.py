"""Every error rowvault raises on purpose.

    RowvaultError
    ├── OptionError            an option or argument that cannot work (bad mode, bad limit)
    ├── ConfirmationRequired   a destructive mode was asked for without confirming it
    ├── DatabaseError          the target database could not be reached or refused a statement
    │   └── ConnectionLost     the connection broke part-way (a server restart, a kill, the network)
    ├── DiskFull               no space left: the database's disk or the file being written
    ├── BackupFileError        the file is not a readable backup (not JSON, not gzip, truncated)
    ├── ValidationError        the file does not fit the target (unknown tables/columns, counts)
    ├── RestoreAborted         the restore stopped part-way (database failure, cancel); the
    │                          result so far travels with it
    └── BackupAborted          a backup could not be completed; no file was left behind

Record-level problems are not exceptions: one bad record never stops a restore. They are
`RecordError` values collected in the result and written to the rejects file.

Messages say what failed, where (file, line, table, record) and what to try next, so the CLI
and the HTTP API can show them to a user as they are. Driver exceptions become these in one
place, `dberrors` (the pattern of httpx's `map_httpcore_exceptions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class RowvaultError(Exception):
    """Base class: catch this to catch everything rowvault raises on purpose."""


class OptionError(RowvaultError, ValueError):
    """An option or argument that cannot work."""


class ConfirmationRequired(RowvaultError):
    """A destructive action (mode `replace`) needs an explicit confirmation."""

    def __init__(self, action: str, flag: str) -> None:
        self.action = action
        self.flag = flag
        super().__init__(f"{action}: confirm it with {flag}")


class DatabaseError(RowvaultError):
    """The database could not be reached, or refused something that is not a record's fault."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(f"{url}: {message}" if url else message)


class ConnectionLost(DatabaseError):
    """The connection to the database broke after it was made."""

    def __init__(self, reason: str, *, url: str | None = None) -> None:
        self.reason = reason
        super().__init__(
            f"the connection to the database was lost ({reason}); once the server answers again, "
            "run the command again (`rowvault resume JOB_ID` finishes a restore)",
            url=url,
        )


class DiskFull(RowvaultError):
    """No space left on a device: the database's (`database`, at `url` when known) or the one
    of a file being written (`path`, when known)."""

    def __init__(
        self, reason: str, *, database: bool = False, url: str | None = None, path: str | None = None
    ) -> None:
        self.reason = reason
        self.database = database or url is not None
        self.url = url
        self.path = path
        what = "the database's disk is full" if self.database else "the disk is full"
        where = f"{url or path}: " if url or path else ""
        super().__init__(f"{where}{what} ({reason}); free some space (or use another disk) and run it again")


class BackupFileError(RowvaultError):
    """The file cannot be read as a backup; nothing was written."""

    def __init__(
        self,
        path: str | Path | None,
        reason: str,
        *,
        line: int | None = None,
        table: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.reason = reason
        self.line = line
        self.table = table
        where = self.path or "backup"
        if line is not None:
            where += f", line {line}"
        if table is not None:
            where += f", table {table!r}"
        super().__init__(f"{where}: {reason}")


class ValidationError(RowvaultError):
    """The file is a backup but does not fit the target; every problem is listed."""

    def __init__(self, path: str | Path | None, problems: Sequence[str]) -> None:
        self.path = str(path) if path is not None else None
        self.problems = list(problems)
        head = f"{self.path or 'backup'} cannot be restored"
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}:\n{body}")


class RestoreAborted(RowvaultError):
    """The restore stopped before the end. `result` holds what was written so far."""

    def __init__(self, reason: str, *, result: Any = None, cancelled: bool = False) -> None:
        self.reason = reason
        self.result = result
        self.cancelled = cancelled
        super().__init__(reason)


class BackupAborted(RowvaultError):
    """The backup stopped; the partial file was removed."""

    def __init__(self, reason: str, *, table: str | None = None) -> None:
        self.reason = reason
        self.table = table
        super().__init__(f"table {table!r}: {reason}" if table else reason)
