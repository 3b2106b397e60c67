"""What benchmarks/peers.py needs around its phases: one child process measured (wall
seconds, peak RSS from os.wait4), throw-away databases on the local servers, the machine.

A child's peak RSS is ru_maxrss of os.wait4 for it (KiB on Linux): its own and that of any
children it waited for (pg_restore -j forks its workers), with a floor of the small
launcher that starts it (`rss_floor_mb` of the machine figures: a child that does
nothing). A database server's own work and memory are in the server's processes and are
not in that figure, for rowvault and for the peer tools alike.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PG_ADMIN = os.environ.get(
    "ROWVAULT_PEERS_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MY_ADMIN = os.environ.get("ROWVAULT_PEERS_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")


@dataclass
class Child:
    """One finished child process: wall seconds, peak RSS, exit status, what it printed."""

    argv: list[str]
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Child:
        if self.returncode != 0:
            raise SystemExit(
                f"{what} failed (exit {self.returncode}): {' '.join(self.argv)}\n"
                f"{self.stdout[-3000:]}\n{self.stderr[-3000:]}"
            )
        return self


# A fork or posix_spawn starts the child with its parent's memory, and Linux keeps that
# high-water mark across exec: a child of this ~90 MB process would never show less than
# 90 MB. So each child is spawned by this launcher (python -I -S, about 8 MB), which waits
# for it with os.wait4 and writes "seconds max_rss_kib exit_code" to the file it is given.
LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(out, "w") as file:
    file.write(f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_child(
    argv: list[str],
    *,
    work: Path,
    stdin: Path | None = None,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600.0,
) -> Child:
    """Run argv to its end; stdout goes to `stdout` (a file the caller keeps) or is captured."""
    tag = uuid.uuid4().hex[:8]
    out_path = stdout or work / f".child-{tag}.out"
    err_path = work / f".child-{tag}.err"
    result_path = work / f".child-{tag}.result"
    with (
        stdin.open("rb") if stdin else contextlib.nullcontext() as stdin_file,
        out_path.open("wb") as out_file,
        err_path.open("wb") as err_file,
    ):
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(result_path), *argv]
        proc = subprocess.Popen(
            launcher,
            stdin=stdin_file or subprocess.DEVNULL,
            stdout=out_file,
            stderr=err_file,
            env=env,
            start_new_session=True,  # a timeout stops the launcher and the child together
        )
        killer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            proc.wait()
        finally:
            killer.cancel()
    printed = "" if stdout else out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    try:
        seconds, rss_kib, code = result_path.read_text().split()
    except (OSError, ValueError):  # the launcher could not start it, or was killed
        seconds, rss_kib, code = "0", "0", str(proc.returncode or -1)
    for path in (result_path, err_path, *([] if stdout else [out_path])):
        path.unlink(missing_ok=True)
    return Child(
        argv=argv,
        seconds=float(seconds),
        peak_rss_mb=int(rss_kib) / 1024,
        returncode=int(code),
        stdout=printed,
        stderr=stderr,
    )


# -- databases on the local servers ---------------------------------------------------------


class ServerDatabases:
    """Uniquely named databases of one run (rv_peers_<run>_<role>), all dropped by `drop_all`."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.created: list[tuple[str, str]] = []
        self._engines: dict[str, sa.Engine] = {}

    def _admin(self, kind: str) -> sa.Engine:
        if kind not in self._engines:
            url = PG_ADMIN if kind == "postgresql" else MY_ADMIN
            self._engines[kind] = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        return self._engines[kind]

    def new(self, kind: str, role: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = f"rv_peers_{self.run}_{role}"
        with self._admin(kind).connect() as conn:
            if kind == "postgresql":
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        self.created.append((kind, name))
        admin = PG_ADMIN if kind == "postgresql" else MY_ADMIN
        return sa.make_url(admin).set(database=name).render_as_string(hide_password=False)

    def drop(self, kind: str, url: str) -> None:
        name = sa.make_url(url).database or ""
        with self._admin(kind).connect() as conn:
            if kind == "postgresql":
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        self.created = [c for c in self.created if c != (kind, name)]

    def drop_all(self) -> None:
        for kind, name in list(self.created):
            admin = PG_ADMIN if kind == "postgresql" else MY_ADMIN
            self.drop(kind, sa.make_url(admin).set(database=name).render_as_string(hide_password=False))
        for engine in self._engines.values():
            engine.dispose()

    def server_version(self, kind: str) -> str:
        with self._admin(kind).connect() as conn:
            return str(conn.exec_driver_sql("SELECT version()").scalar())


def libpq_url(url: str) -> str:
    """The URL as pg_dump, pg_restore and psycopg spell it (no +driver)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def count_rows(target: str, tables: list[str]) -> int:
    """Rows in these tables of a SQLite path or a server URL: the restore's check of itself."""
    if "://" not in target:
        conn = sqlite3.connect(target)
        try:
            return sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
        finally:
            conn.close()
    engine = sa.create_engine(target)
    try:
        with engine.connect() as conn:
            quote = engine.dialect.identifier_preparer.quote
            return sum(
                int(conn.exec_driver_sql(f"SELECT count(*) FROM {quote(t)}").scalar() or 0) for t in tables
            )
    finally:
        engine.dispose()


# -- the machine ----------------------------------------------------------------------------


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except OSError as exc:
        return f"not found ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def compile_rowvault() -> None:
    """Byte-compile rowvault's modules, as `pip install` does for an installed package: an
    editable checkout run with PYTHONDONTWRITEBYTECODE=1 would otherwise compile every
    module from source in every child process (0.2 s of each phase, none of a real user's)."""
    import compileall

    import rowvault

    compileall.compile_dir(str(Path(rowvault.__file__).parent), quiet=1)


def machine(databases: ServerDatabases, kinds: list[str], work: Path) -> dict[str, Any]:
    """What the figures were measured on: cores, CPU, RAM, load, tool and server versions."""
    import rowvault

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "ram_gib": round(int(mem.group(1)) / 1024**2, 1) if mem else None,
        "load_average": tuple(round(x, 2) for x in os.getloadavg()),
        "python": sys.version.split()[0],
        "python_sqlite": sqlite3.sqlite_version,
        "rowvault": rowvault.__version__,
        "sqlite3": _first_line(["sqlite3", "--version"]).split()[0],
        "rss_floor_mb": round(run_child(["true"], work=work).peak_rss_mb, 1),
        "rowvault_cli_start_s": round(
            run_child([sys.executable, "-m", "rowvault.cli", "--version"], work=work).seconds, 2
        ),
    }
    if "postgresql" in kinds:
        info["pg_restore"] = _first_line(["pg_restore", "--version"])
        info["postgresql_server"] = databases.server_version("postgresql").split(" on ")[0]
    if "mysql" in kinds:
        info["myloader"] = _first_line(["myloader", "--version"])
        info["mariadb_server"] = databases.server_version("mysql")
    return info
