"""Passwords stay secret (issue 7, item 8): the database's, the state store's
(ROWVAULT_STATE_URL) and the broker's (ROWVAULT_BROKER_URL) appear in no HTTP answer, log
line, job record or error message - only their masked forms do."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import rowvault
from rowvault.demo import build_demo

from ..server import _environment, free_port, poll_until_finished, running_server
from ..test_celery import REDIS_URL, celery_worker

DB_SECRET = "S3cretPw0rd"
STATE_SECRET = "S3cretSt4te"
BROKER_SECRET = "S3cretBr0ker"
SECRETS = (DB_SECRET, STATE_SECRET, BROKER_SECRET)


def with_password(url: str, password: str) -> str:
    """The same PostgreSQL URL with a password (trust auth accepts any)."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def broker_url(port: int | None = None) -> str:
    parts = make_url(REDIS_URL)
    return f"redis://:{BROKER_SECRET}@{parts.host}:{port or parts.port or 6379}/{parts.database or 0}"


def assert_no_secret(texts: Iterable[str], where: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{where} shows a password: {text[:500]}"


def state_rows(url: str) -> list[str]:
    """Every job and error row of the state store, as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            jobs = conn.exec_driver_sql("SELECT * FROM rowvault_jobs").fetchall()
            errors = conn.exec_driver_sql("SELECT * FROM rowvault_job_errors").fetchall()
    finally:
        engine.dispose()
    return [repr(tuple(row)) for row in [*jobs, *errors]]


@pytest.fixture
def backup_file(tmp_path: Path) -> Path:
    build_demo(str(tmp_path / "source.db"), 400)
    rowvault.backup(str(tmp_path / "source.db"), tmp_path / "backup.json.gz")
    return tmp_path / "backup.json.gz"


@pytest.fixture
def urls(make_db: Callable[[str], str]) -> tuple[str, str]:
    """(target database, state store): new PostgreSQL databases, both with a password."""
    return with_password(make_db("postgresql"), DB_SECRET), with_password(make_db("postgresql"), STATE_SECRET)


def api_answers(client: httpx.Client, job_id: str) -> list[str]:
    """The body of every API route that could show a URL or an error."""
    paths = [
        "/api/config",
        "/api/backup/jobs",
        f"/api/backup/jobs/{job_id}",
        f"/api/backup/jobs/{job_id}/errors",
        f"/api/backup/progress?id={job_id}",
        "/api/backup/jobs/no-such-job",
    ]
    answers = [client.get(path).text for path in paths]
    answers.append(
        client.post("/api/backup", content=b"[1]", headers={"content-type": "application/json"}).text
    )
    answers.append(client.post("/api/backup", content=b"{}", headers={"content-type": "text/plain"}).text)
    return answers


def test_serve_shows_no_password_of_the_database_state_store_or_broker(
    urls: tuple[str, str], backup_file: Path, tmp_path: Path
) -> None:
    db, state = urls
    env = {"ROWVAULT_STATE_URL": state, "ROWVAULT_BROKER_URL": broker_url(), "ROWVAULT_JOBS": "thread"}
    with running_server(db, tmp_path / "home", env=env) as server, server.client() as client:
        done = client.post(
            "/api/backup",
            params={"wait": "true"},
            content=backup_file.read_bytes(),
            headers={"content-type": "application/gzip"},
        )
        assert done.status_code == 200 and done.json()["success"] is True, done.text
        answers = [done.text, *api_answers(client, done.json()["progressId"])]
        log = server.log.read_text()

    assert "postgres:***@" in answers[1], "the masked URL is what /api/config shows"
    assert_no_secret(answers, "an API answer")
    assert_no_secret([log], "the server's output")
    assert "postgres:***@" in log, "serve names the database and the state store, masked"
    rows = state_rows(state)
    assert len(rows) >= 1
    assert_no_secret(rows, "the state store")


def test_celery_jobs_show_no_password_in_the_server_the_worker_or_the_store(
    urls: tuple[str, str], backup_file: Path, tmp_path: Path
) -> None:
    db, state = urls
    home = tmp_path / "home"
    env = {"ROWVAULT_STATE_URL": state, "ROWVAULT_BROKER_URL": broker_url(), "ROWVAULT_JOBS": "celery"}
    with running_server(db, home, env=env) as server, server.client() as client:
        with celery_worker(db, home, env) as worker:
            started = client.post(
                "/api/backup", content=backup_file.read_bytes(), headers={"content-type": "application/gzip"}
            )
            assert started.status_code == 202, started.text
            job_id = started.json()["progressId"]
            last = poll_until_finished(client, job_id, timeout=120)[-1]
            assert last["status"] == "completed", last
            answers = api_answers(client, job_id)
        server_log = server.log.read_text()
        worker_log = worker.log.read_text()

    assert "redis://:**@" in server_log, "serve names the broker, masked"
    assert "redis://:**@" in worker_log
    assert_no_secret(answers, "an API answer")
    assert_no_secret([server_log], "the server's output")
    assert_no_secret([worker_log], "the worker's output")
    assert_no_secret(state_rows(state), "the state store")


def test_an_unreachable_broker_is_named_without_its_password(
    urls: tuple[str, str], backup_file: Path, tmp_path: Path
) -> None:
    db, state = urls
    down = broker_url(free_port())  # nothing listens there
    env = {"ROWVAULT_STATE_URL": state, "ROWVAULT_BROKER_URL": down, "ROWVAULT_JOBS": "celery"}
    with running_server(db, tmp_path / "home", env=env) as server, server.client() as client:
        refused = client.post(
            "/api/backup", content=backup_file.read_bytes(), headers={"content-type": "application/gzip"}
        )
        jobs = client.get("/api/backup/jobs").text
        log = server.log.read_text()

    assert refused.status_code == 503, refused.text
    assert "redis://:**@" in refused.json()["detail"]
    assert_no_secret([refused.text, jobs, log], "the broker's error")
    assert_no_secret(state_rows(state), "the state store")


@pytest.mark.parametrize(
    "command",
    [["jobs"], ["jobs", "--json"], ["worker"], ["worker", "--celery"], ["serve"]],
    ids=" ".join,
)
def test_an_unusable_state_store_is_named_without_its_password(command: list[str], tmp_path: Path) -> None:
    state = f"postgresql+psycopg://postgres:{STATE_SECRET}@127.0.0.1:{free_port()}/test"
    env = {"ROWVAULT_STATE_URL": state, "ROWVAULT_BROKER_URL": broker_url()}
    args = [*command, "--db", str(tmp_path / "t.db")] if command[0] != "jobs" else command
    if command == ["serve"]:
        args += ["--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args],
        env=_environment(tmp_path / "home", None, env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert "postgres:***@127.0.0.1" in output and "state store cannot be used" in output, output
    assert_no_secret([output], "the error message")


def test_a_password_given_as_a_query_parameter_is_masked_too() -> None:
    from rowvault.database import open_database
    from rowvault.settings import load_settings

    database = open_database("postgresql://postgres@127.0.0.1/test?password=S3cretQuery")
    assert "S3cretQuery" not in database.display_url
    database.close()
    settings = load_settings(
        DATABASE_URL="postgresql://u:S3cretDb@h/d",
        ROWVAULT_STATE_URL="postgresql://u:S3cretState@h/d",
        ROWVAULT_BROKER_URL="redis://:S3cretBroker@h:6379/0",
    )
    assert "S3cret" not in repr(settings)
