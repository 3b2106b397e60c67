"""Helpers for the tests of jobs on Celery: a reachable Redis broker, a real `rowvault worker
--celery` process in its own process group, an upload and a progress read through the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from .conftest import IN_CI
from .server import _environment

REDIS_URL = os.environ.get("ROWVAULT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def reachable_broker(url: str) -> str:
    """`url` if Redis answers there; else skip (fail in CI) naming it."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"Redis is not reachable at {url} ({exc})"
        if IN_CI:
            pytest.fail(f"{reason}; CI must run the Celery tests")
        pytest.skip(f"{reason}; set ROWVAULT_TEST_REDIS_URL to run these tests")
    return url


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """Die at once, pool processes and all, as a crashed machine does."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Until Celery says the worker consumes its queue; fails with its log if it exits."""
        deadline = time.monotonic() + timeout
        while " ready." not in (text := self.log.read_text(errors="replace")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not come up:\n{text}")
            time.sleep(0.1)

    def runs(self, owner: str | None) -> bool:
        """Whether the process `host:pid` that owns a job is this worker or one of its pool
        processes (they share the worker's process group)."""
        pid = (owner or "").rpartition(":")[2]
        try:
            return pid.isdigit() and os.getpgid(int(pid)) == self.process.pid
        except ProcessLookupError:
            return False


@contextmanager
def celery_worker(db: str, home: Path, env: dict[str, str]) -> Iterator[Worker]:
    """`rowvault worker --celery` in its own process group until the block ends."""
    log = home / f"celery-worker-{time.monotonic_ns()}.log"
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rowvault.cli", "worker", "--celery", "--db", db],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(home, None, env),
            start_new_session=True,
        )
    try:
        yield Worker(process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: the job in hand finishes first
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def upload(client: httpx.Client, path: Path) -> httpx.Response:
    with open(path, "rb") as body:
        return client.post("/api/backup", content=body, headers={"content-type": "application/gzip"})


def progress(client: httpx.Client, job_id: str) -> dict[str, object]:
    record: dict[str, object] = client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]
    return record
