"""Jobs on Celery workers (ROWVAULT_JOBS=celery): a real Redis broker, a real `rowvault worker
--celery` process, a real server. The server only queues; the worker restores."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import rowvault
from rowvault.demo import build_demo

from .celery_support import REDIS_URL, celery_worker, progress, reachable_broker, upload
from .dbdump import counts
from .server import poll_until_finished, running_server

RECORDS = 4000


@pytest.fixture(scope="module")
def broker() -> str:
    return reachable_broker(REDIS_URL)


@pytest.fixture(scope="module")
def backup_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    build_demo(folder / "source.db", RECORDS)
    rowvault.backup(folder / "source.db", folder / "backup.json.gz")
    return folder / "backup.json.gz"


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


def test_a_job_whose_worker_died_is_queued_again_and_finishes_on_the_next_worker(
    broker: str, backup_file: Path, tmp_path: Path
) -> None:
    """No worker is left when the only one dies: the API, asked about the job, puts it back
    on the queue (it does not end `interrupted`), and the next worker resumes it from its
    checkpoint to an identical database."""
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
            time.sleep(0.2)  # its process is gone: seen at once on this host
        with celery_worker(target, home, env):
            finished = poll_until_finished(client, job_id, timeout=120)[-1]

    assert stopped["status"] == "queued", stopped
    assert 800 <= stopped["processed"] < RECORDS  # type: ignore[operator]
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
