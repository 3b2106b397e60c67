"""Turn what a user calls a database (URL, SQLite path, Engine) into a SQLAlchemy Engine.

Bare scheme names pick the drivers rowvault ships with (`postgresql://` means psycopg 3,
`mysql://` means PyMySQL), so a URL copied from an application's settings works as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

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

    @property
    def name(self) -> str:
        """Dialect family: `sqlite`, `postgresql` or `mysql` (MariaDB included)."""
        name = self.engine.dialect.name
        return "mysql" if name == "mariadb" else name

    @property
    def display_url(self) -> str:
        return display_url(self.engine)

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()


def display_url(engine: Engine) -> str:
    """The engine's URL with the password hidden, for messages and logs."""
    return engine.url.render_as_string(hide_password=True)


def normalize_url(url: str) -> str:
    """Give bare scheme names the drivers rowvault ships with."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" not in scheme and scheme in _DEFAULT_DRIVERS:
        return f"{_DEFAULT_DRIVERS[scheme]}://{rest}"
    return url


def is_url(value: str) -> bool:
    return "://" in value


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
        elif parsed.get_driver_name() == "pymysql" and "local_infile" not in parsed.query:
            # Lets the restore use LOAD DATA LOCAL for plain inserts; the dialect allows the
            # file transfer only for its own statements.
            kwargs["connect_args"] = {"local_infile": True}
        engine = sa.create_engine(parsed, **kwargs)
    except (ArgumentError, ValueError) as exc:
        raise OptionError(f"not a database URL or SQLite path: {text!r} ({exc})") from exc
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseError(
            f"no driver for {text.split('://')[0]!r}: install rowvault[postgresql] or rowvault[mysql] ({exc})"
        ) from exc
    return Database(engine, owned=True)


@contextmanager
def opened(db: DatabaseLike, *, must_exist: bool = False) -> Iterator[Database]:
    database = open_database(db, must_exist=must_exist)
    try:
        check_connection(database)
        yield database
    finally:
        database.close()


def check_connection(database: Database) -> None:
    """Fail early, with the URL (password hidden), when the database does not answer."""
    try:
        with database.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseError(f"cannot connect: {reason}", url=database.display_url) from exc
