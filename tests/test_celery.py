"""Jobs on Celery workers (ROWVAULT_JOBS=celery): a real Redis broker, a real `rowvault worker
--celery` process, a real server. The server only queues; the worker restores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

import rowvault
from rowvault.demo import build_demo

from .conftest import IN_CI
from .dbdump import counts
from .server import _environment, poll_until_finished, running_server

RECORDS = 4000
REDIS_URL = os.environ.get("ROWVAULT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def broker() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"Redis is not reachable at {REDIS_URL} ({exc})"
        if IN_CI:
            pytest.fail(f"{reason}; CI must run the Celery tests")
        pytest.skip(f"{reason}; set ROWVAULT_TEST_REDIS_URL to run these tests")
    return REDIS_URL


@pytest.fixture(scope="module")
def backup_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    build_demo(folder / "source.db", RECORDS)
    rowvault.backup(folder / "source.db", folder / "backup.json.gz")
    return folder / "backup.json.gz"


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """Die at once, pool processes and all, as a crashed machine does."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@contextmanager
def celery_worker(db: str, home: Path, env: dict[str, str]) -> Iterator[Worker]:
    """`rowvault worker --celery` in its own process group until the block ends."""
    log = home / f"celery-worker-{time.monotonic_ns()}.log"
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


def test_a_celery_worker_runs_the_jobs_the_server_queued(
    broker: str, backup_file: Path, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    """PostgreSQL target, PostgreSQL state store, Redis broker: the multi-machine setup."""
    target, state = make_db("postgresql"), make_db("postgresql")
    home = tmp_path / "home"
    env = {"ROWVAULT_JOBS": "celery", "ROWVAULT_BROKER_URL": broker, "ROWVAULT_STATE_URL": state}
    with running_server(target, home, env=env) as server, server.client() as client:
        cancelled = upload(client, backup_file).json()["progressId"]
        assert client.post("/api/backup/cancel", params={"id": cancelled}).status_code == 202
        queued = upload(client, backup_file)
        assert queued.status_code == 202, queued.text
        job_id = queued.json()["progressId"]
        time.sleep(1.0)
        waiting = progress(client, job_id)  # no worker yet: the job waits in the queue

        with celery_worker(target, home, env) as worker:
            records = poll_until_finished(client, job_id, timeout=120)
        after = progress(client, cancelled)

    assert waiting["status"] == "queued" and waiting["processed"] == 0
    assert records[-1]["status"] == "completed", records[-1]
    assert records[-1]["processed"] == records[-1]["total"] == RECORDS
    assert sum(counts(target).values()) == RECORDS
    assert after["status"] == "cancelled"  # its message reached the worker, which left it alone
    log = worker.log.read_text()
    assert f"job {job_id} started" in log, log
    assert f"job {cancelled} is cancelled, not queued" in log, log


def test_the_worker_takes_only_its_own_databases_jobs(broker: str, backup_file: Path, tmp_path: Path) -> None:
    first, second = str(tmp_path / "first.db"), str(tmp_path / "second.db")
    home = tmp_path / "home"
    env = {"ROWVAULT_JOBS": "celery", "ROWVAULT_BROKER_URL": broker}
    with running_server(first, home, env=env) as server, server.client() as client:
        job_id = upload(client, backup_file).json()["progressId"]
        with celery_worker(second, home, env):
            time.sleep(4.0)  # long enough for a worker to start and take a job
            untouched = progress(client, job_id)
        with celery_worker(first, home, env):
            finished = poll_until_finished(client, job_id, timeout=120)[-1]

    assert untouched["status"] == "queued"
    assert finished["status"] == "completed"
    assert sum(counts("sqlite:///" + first).values()) == RECORDS


def test_a_broker_that_does_not_answer_is_503_and_frees_the_database(
    backup_file: Path, tmp_path: Path
) -> None:
    target = str(tmp_path / "target.db")
    env = {"ROWVAULT_JOBS": "celery", "ROWVAULT_BROKER_URL": "redis://127.0.0.1:9/0"}
    with running_server(target, tmp_path / "home", env=env) as server, server.client() as client:
        refused = upload(client, backup_file)
        jobs = client.get("/api/backup/jobs").json()["jobs"]
        again = upload(client, backup_file)

    assert refused.status_code == 503
    assert refused.json()["error"] and "job queue" in refused.json()["detail"], refused.text
    assert "127.0.0.1:9" in refused.json()["detail"]
    assert jobs[0]["status"] == "error" and "job queue" in jobs[0]["error"]
    assert again.status_code == 503  # not 409: the failed job does not hold the database


def test_a_job_whose_worker_died_is_interrupted_and_resumes_on_another(
    broker: str, backup_file: Path, tmp_path: Path
) -> None:
    target = str(tmp_path / "target.db")
    home = tmp_path / "home"
    env = {"ROWVAULT_JOBS": "celery", "ROWVAULT_BROKER_URL": broker}
    slow = {**env, "RESTORE_BATCH_SIZE": "100", "RESTORE_BATCH_DELAY_MS": "100"}  # 40 batches, 4 s+
    with running_server(target, home, env=env) as server, server.client() as client:
        job_id = upload(client, backup_file).json()["progressId"]
        with celery_worker(target, home, slow) as worker:
            while (done := progress(client, job_id))["processed"] < 800:  # type: ignore[operator]
                assert done["status"] in ("queued", "running"), done
                time.sleep(0.05)
            worker.kill()
        deadline = time.monotonic() + 60
        while (stopped := progress(client, job_id))["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)  # until its heartbeat is stale
        with celery_worker(target, home, env):
            resumed = client.post("/api/backup/resume", params={"id": job_id})
            finished = poll_until_finished(client, job_id, timeout=120)[-1]

    assert stopped["status"] == "interrupted"
    assert 800 <= stopped["processed"] < RECORDS  # type: ignore[operator]
    assert resumed.status_code == 202, resumed.text
    assert finished["status"] == "completed", finished
    assert sum(counts("sqlite:///" + target).values()) == RECORDS


@pytest.mark.parametrize("command", [["worker", "--celery"], ["serve"]])
def test_without_celery_installed_the_cli_says_what_to_install(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rowvault.cli import app

    monkeypatch.setitem(sys.modules, "celery", None)  # import celery -> ImportError
    monkeypatch.delitem(sys.modules, "rowvault.jobs.celery_queue", raising=False)
    monkeypatch.setenv("ROWVAULT_JOBS", "celery")
    answer = CliRunner().invoke(app, [*command, "--db", str(tmp_path / "t.db")])

    assert answer.exit_code == 1
    assert "pip install 'rowvault[celery]'" in answer.output
    assert "Traceback" not in answer.output
