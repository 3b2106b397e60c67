"""One module per engine family: its bulk write path, its limits, its session settings."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ..errors import DatabaseError
from .base import Dialect, Outcome, Row, Target

__all__ = ["Dialect", "Outcome", "Row", "Target", "dialect_for"]


def dialect_for(engine: Engine) -> Dialect:
    """The bulk path for `engine`; only the drivers rowvault ships with are supported."""
    name, driver = engine.dialect.name, engine.dialect.driver
    if name == "sqlite" and driver == "pysqlite":
        from .sqlite import SQLiteDialect

        return SQLiteDialect(engine)
    if name == "postgresql" and driver == "psycopg":
        from .postgresql import PostgreSQLDialect

        return PostgreSQLDialect(engine)
    if name in ("mysql", "mariadb") and driver == "pymysql":
        from .mysql import MySQLDialect

        return MySQLDialect(engine)
    raise DatabaseError(
        f"rowvault supports sqlite (sqlite3), postgresql+psycopg and mysql+pymysql; "
        f"this database uses {name}+{driver}"
    )
