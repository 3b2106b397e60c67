"""A worker outlives its database's connections: after the server killed them, the next job
runs on new ones instead of failing on dead pooled connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo
from rowvault.jobs import new_runner
from rowvault.settings import load_settings

from .dbdump import counts

KILL = {
    "postgresql": (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ),
    "mysql": None,  # one KILL per connection id, below
}


def kill_other_connections(url: str) -> int:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                return len(conn.exec_driver_sql(KILL["postgresql"]).fetchall())
            ids = conn.exec_driver_sql(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            ).scalars()
            killed = 0
            for conn_id in list(ids):
                conn.exec_driver_sql(f"KILL CONNECTION {int(conn_id)}")
                killed += 1
            return killed
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_the_next_job_after_the_server_killed_the_connections_succeeds(
    make_db: Any, kind: str, tmp_path: Path
) -> None:
    build_demo(tmp_path / "source.db", 1000)
    backup = tmp_path / "backup.json.gz"
    rowvault.backup(tmp_path / "source.db", backup)
    url = make_db(kind)
    runner = new_runner(load_settings(DATABASE_URL=url))
    try:
        first = runner.run(runner.create_restore(backup, {}).id)
        assert first.status == "completed", first.error
        with runner.database.engine.connect() as conn:  # leave a connection in the pool
            conn.exec_driver_sql("SELECT 1")
        assert kill_other_connections(url) >= 1
        second = runner.run(runner.create_restore(backup, {}).id)
    finally:
        runner.close()
        runner.store.close()
    assert second.status == "completed", second.error
    assert sum(counts(url).values()) == 1000
