"""Small real-database fixtures: a fresh SQLite file, PostgreSQL database or MariaDB database
per test, dropped afterwards. Outside CI a missing server skips its tests, naming it; in CI
(CI=1) it fails them."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

IN_CI = bool(os.environ.get("CI"))
SERVERS = {
    "postgresql": (
        "PostgreSQL",
        "ROWVAULT_TEST_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ),
    "mysql": (
        "MariaDB/MySQL",
        "ROWVAULT_TEST_MYSQL_URL",
        "mysql+pymysql://root@127.0.0.1:3306/test",
    ),
}
ENGINES = ["sqlite", "postgresql", "mysql"]
_reachable: dict[str, str | None] = {}


def server_url(kind: str) -> str:
    """The admin URL of a server kind, or skip (fail in CI) when it does not answer."""
    label, env, default = SERVERS[kind]
    url = os.environ.get(env, default)
    if kind not in _reachable:
        try:
            engine = sa.create_engine(url)
            with engine.connect():
                pass
            engine.dispose()
            _reachable[kind] = None
        except Exception as exc:  # any failure to connect means the service is missing
            _reachable[kind] = f"{label} is not reachable at {url} ({type(exc).__name__}: {exc})"
    reason = _reachable[kind]
    if reason:
        if IN_CI:
            pytest.fail(f"{reason}; CI must run the database tests")
        pytest.skip(f"{reason}; set {env} to run these tests")
    return url


@pytest.fixture
def make_db(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """make_db(kind) -> URL of a new, empty database of that kind."""
    cleanups: list[Callable[[], None]] = []

    def make(kind: str) -> str:
        name = f"rv_{uuid.uuid4().hex[:12]}"
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        admin = sa.create_engine(server_url(kind), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

        def drop() -> None:
            with admin.connect() as conn:
                if kind == "postgresql":
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            admin.dispose()

        cleanups.append(drop)
        return make_url(server_url(kind)).set(database=name).render_as_string(hide_password=False)

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def rowvault_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own ROWVAULT_HOME (state store, uploads, job files)."""
    home = tmp_path / "rowvault-home"
    monkeypatch.setenv("ROWVAULT_HOME", str(home))
    monkeypatch.delenv("ROWVAULT_STATE_URL", raising=False)
    monkeypatch.delenv("ROWVAULT_TOKEN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return home


@pytest.fixture(autouse=True)
def _alone_or_together(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """With `make test` the tests run in two processes (pytest-xdist). A test marked `alone`
    waits until no other test runs and keeps the others out while it runs: a writer-first
    lock over two files shared by the processes (the turnstile lets no new test in while an
    `alone` test waits)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    root = tmp_path_factory.getbasetemp().parent  # shared by the run's worker processes
    with open(root / "alone.turnstile", "a") as turnstile, open(root / "alone.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if request.node.get_closest_marker("alone"):
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
                fcntl.flock(turnstile, fcntl.LOCK_UN)
            return
        fcntl.flock(lock, fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
