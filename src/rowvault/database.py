"""Turn what a user calls a database (URL, SQLite path, Engine) into a SQLAlchemy Engine.

Bare scheme names pick the drivers rowvault ships with (`postgresql://` means psycopg 3,
`mysql://` means PyMySQL), so a URL copied from an application's settings works as it is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from .dberrors import cannot_connect, database_errors, driver_message
from .errors import DatabaseError, OptionError

DatabaseLike = str | os.PathLike[str] | Engine

_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


@dataclass
class Database:
    """An engine plus whether rowvault made it (and so must dispose of it)."""

    engine: Engine
    owned: bool
    label: str | None = None
    """What messages call it, when the engine is a stand-in (see `without_writes`)."""
    cleanup: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        """Dialect family: `sqlite`, `postgresql` or `mysql` (MariaDB included)."""
        name = self.engine.dialect.name
        return "mysql" if name == "mariadb" else name

    @property
    def display_url(self) -> str:
        return self.label or display_url(self.engine)

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()
        if self.cleanup is not None:
            self.cleanup()


_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "sslpassword")


def display_url(engine: Engine) -> str:
    """The engine's URL with the password hidden, for messages and logs (also one given as
    a query parameter, `?password=...`)."""
    url = engine.url
    secret = {k: "***" for k in url.query if k.lower() in _SECRET_QUERY_KEYS}
    if secret:
        url = url.update_query_dict(secret)
    return url.render_as_string(hide_password=True)


def normalize_url(url: str) -> str:
    """Give bare scheme names the drivers rowvault ships with."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" not in scheme and scheme in _DEFAULT_DRIVERS:
        return f"{_DEFAULT_DRIVERS[scheme]}://{rest}"
    return url


def is_url(value: str) -> bool:
    return "://" in value


def _guard_local_files(engine: Engine) -> None:
    """Every connection of the engine is a GuardedConnection: LOAD DATA LOCAL can send the
    restore's spool file during its own statement, and no file otherwise, whatever the server
    asks for (a URL's `local_infile` cannot turn PyMySQL's unchecked transfer on)."""
    from .dialects.mysql_connection import GuardedConnection

    @sa.event.listens_for(engine, "do_connect")
    def connect(dialect: object, record: object, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        return GuardedConnection(*cargs, **cparams)


def open_database(db: DatabaseLike, *, must_exist: bool = False) -> Database:
    """Open `db`; a SQLite path that does not exist is created unless `must_exist`."""
    if isinstance(db, Engine):
        return Database(db, owned=False)
    text = os.fspath(db)
    if not text:
        raise OptionError("no database given: pass --db URL or set DATABASE_URL")
    if is_url(text):
        url = normalize_url(text)
    else:
        path = Path(text).expanduser()
        if must_exist and not path.exists():
            raise DatabaseError(f"no such SQLite database file: {path}")
        if path.is_dir():
            raise DatabaseError(f"{path} is a directory, not a SQLite database file")
        url = f"sqlite:///{path.resolve()}"
    try:
        parsed = make_url(url)
        kwargs: dict[str, object] = {}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": 30}
        else:  # a connection the server closed (a restart, a kill) is replaced, not reused
            kwargs["pool_pre_ping"] = True
        engine = sa.create_engine(parsed, **kwargs)
        if parsed.get_driver_name() == "pymysql":
            _guard_local_files(engine)
    except (ArgumentError, ValueError) as exc:
        raise OptionError(f"not a database URL or SQLite path: {text!r} ({exc})") from exc
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseError(
            f"no driver for {text.split('://')[0]!r}: install rowvault[postgresql] or rowvault[mysql] ({exc})"
        ) from exc
    return Database(engine, owned=True)


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite engine; None for other engines and in-memory databases."""
    if engine.dialect.name != "sqlite":
        return None
    name = engine.url.database or ""
    if not name or name == ":memory:" or name.startswith("file:") or engine.url.query.get("uri"):
        return None
    return Path(name)


def without_writes(database: Database, *, read_only: bool) -> Database:
    """The database for a dry run or a validation, which must leave no trace.

    A SQLite file that does not exist yet is not created (connecting would create it): an
    empty stand-in in a temporary folder takes its place, and messages still name the file.
    With `read_only`, an existing SQLite file is opened read-only."""
    path = sqlite_path(database.engine)
    if path is None:
        return database
    label = database.display_url
    if path.exists():
        if not read_only:
            return database
        url = f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"
        stand_in = sa.create_engine(url, connect_args={"timeout": 30})
        database.close()
        return Database(stand_in, owned=True, label=label)
    folder = Path(tempfile.mkdtemp(prefix="rowvault-dry-run-"))
    stand_in = sa.create_engine(f"sqlite:///{folder / 'empty.db'}", connect_args={"timeout": 30})
    database.close()
    return Database(
        stand_in, owned=True, label=label, cleanup=partial(shutil.rmtree, folder, ignore_errors=True)
    )


@contextmanager
def opened(
    db: DatabaseLike, *, must_exist: bool = False, writes: bool = True, read_only: bool = False
) -> Iterator[Database]:
    """`db`, connected. `writes=False` for a dry run or a validation (see `without_writes`)."""
    database = open_database(db, must_exist=must_exist)
    if not writes or read_only:
        database = without_writes(database, read_only=read_only)
    try:
        check_connection(database)
        with database_errors(database.display_url):  # the one boundary for what the driver raises
            yield database
    finally:
        database.close()


_BACKUP_STARTS = (b"\x1f\x8b", b"{")  # gzip, or JSON: what a backup file begins with


def check_connection(database: Database) -> None:
    """Fail early, with the URL (password hidden), when the database does not answer - or,
    for SQLite, when the file is not a database (a first statement reads its header)."""
    sqlite = database.engine.dialect.name == "sqlite"
    try:
        with database.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA schema_version" if sqlite else "SELECT 1")
    except SQLAlchemyError as exc:
        reason = driver_message(getattr(exc, "orig", None) or exc)
        if not sqlite:
            raise cannot_connect(reason, url=database.display_url) from exc
        raise DatabaseError(_sqlite_failure(database.engine, reason), url=database.display_url) from exc


def _sqlite_failure(engine: Engine, reason: str) -> str:
    path = _sqlite_file(engine)
    start = b""
    if path is not None and path.is_file():
        with suppress(OSError), path.open("rb") as file:
            start = file.read(2)
    if start.startswith(_BACKUP_STARTS):
        return (
            f"a backup file, not a SQLite database ({reason}): give the backup as the FILE "
            "argument and the database with --db"
        )
    return f"cannot open the SQLite database ({reason}); check that --db names a SQLite database file"


def _sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite engine, also when it is opened read-only through a `file:` URI."""
    path = sqlite_path(engine)
    name = engine.url.database or ""
    if path is None and name.startswith("file:"):
        return Path(unquote(name[len("file:") :].partition("?")[0]))
    return path
