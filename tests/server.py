"""A real `rowvault serve` on a loopback port, as a subprocess, for API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    token: str | None = None
    db: str = ""

    @property
    def db_url(self) -> str:
        return self.db if "://" in self.db else f"sqlite:///{self.db}"

    def client(self, **kwargs: object) -> httpx.Client:
        """An API client as the page is one: the token if any, and X-Rowvault on every call."""
        headers = {"X-Rowvault": "1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kwargs)  # type: ignore[arg-type]

    def rss_kb(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise LookupError(field)

    def children(self) -> list[int]:
        """The server's worker processes (from /proc: each process's parent id)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError):
                fields = stat.read_text().rpartition(")")[2].split()
                if int(fields[1]) == self.process.pid:
                    found.append(int(stat.parent.name))
        return found

    def kill(self) -> None:
        """Die without cleaning up, workers and all, as a crashed machine does."""
        workers = self.children()
        self.process.send_signal(signal.SIGKILL)
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)


def _environment(home: Path, token: str | None, env: dict[str, str] | None) -> dict[str, str]:
    """The parent's environment without any rowvault setting, then exactly the test's."""
    ours = ("ROWVAULT_", "RESTORE_", "DATABASE_URL")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    environment.update(env or {}, ROWVAULT_HOME=str(home), PYTHONUNBUFFERED="1")
    if token:
        environment["ROWVAULT_TOKEN"] = token
    return environment


@contextmanager
def running_server(
    db: str | Path, home: Path, *, token: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`python -m rowvault.cli serve` on a free loopback port until the block ends."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"server-{port}.log"
    environment = _environment(home, token, env)
    db = str(db)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rowvault.cli", "serve", "--db", db, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log, token, db)
    try:
        _wait_until_up(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_until_up(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.log.read_text()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not come up:\n{server.log.read_text()}")


def poll_until_finished(
    client: httpx.Client, job_id: str, *, timeout: float = 300
) -> list[dict[str, object]]:
    """Every progress record seen while polling, until the job has finished."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get("/api/backup/progress", params={"id": job_id})
        assert answer.status_code == 200, answer.text
        record = answer.json()["progress"]
        seen.append(record)
        if record["status"] in ("completed", "error", "cancelled", "interrupted"):
            return seen
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s")
