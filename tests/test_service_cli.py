"""The service's command-line side: CLI restores are jobs, `jobs`, `resume`, `serve` rules,
and the API mounted in another FastAPI application."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import rowvault
from rowvault.cli import app
from rowvault.demo import build_demo
from rowvault.settings import load_settings
from rowvault.web import Service, build_router, install_error_handlers

from .backupfiles import read_backup, write_backup
from .server import running_server

runner = CliRunner()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    build_demo(tmp_path / "source.db", 800)
    path = tmp_path / "backup.json.gz"
    rowvault.backup(tmp_path / "source.db", path)
    return path


def test_a_cli_restore_is_a_job_that_jobs_lists(source: Path, tmp_path: Path) -> None:
    restored = runner.invoke(app, ["restore", str(source), "--db", str(tmp_path / "t.db"), "--json"])
    listed = runner.invoke(app, ["jobs", "--json"])

    assert restored.exit_code == 0, restored.output
    job_id = json.loads(restored.stdout)["progressId"]
    jobs = json.loads(listed.stdout)
    assert [j["id"] for j in jobs] == [job_id]
    assert jobs[0]["status"] == "completed" and jobs[0]["processed"] == 800


def test_a_server_on_the_same_home_sees_cli_jobs(source: Path, tmp_path: Path, rowvault_home: Path) -> None:
    target = str(tmp_path / "t.db")
    restored = runner.invoke(app, ["restore", str(source), "--db", target, "--json"])
    job_id = json.loads(restored.stdout)["progressId"]
    with running_server(target, rowvault_home) as server, server.client() as client:
        progress = client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]
    assert progress["model"] == "completed"


def test_a_completed_job_cannot_be_resumed(source: Path, tmp_path: Path) -> None:
    metadata, tables = read_backup(source)
    broken = write_backup(tmp_path / "b.json", metadata, tables)
    target = tmp_path / "t.db"
    first = runner.invoke(app, ["restore", str(broken), "--db", str(target), "--mode", "replace", "--json"])
    assert first.exit_code == 1  # refused: no --yes, and no job was recorded for it
    done = runner.invoke(app, ["restore", str(broken), "--db", str(target), "--json"])
    job_id = json.loads(done.stdout)["progressId"]

    again = runner.invoke(app, ["resume", job_id, "--db", str(target)])

    assert again.exit_code == 1
    assert "only a job that stopped can resume" in again.output


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rowvault.cli", "serve", "--db", str(tmp_path / "x.db"), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "without a token" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_router_mounts_in_an_existing_app(source: Path, tmp_path: Path, rowvault_home: Path) -> None:
    settings = load_settings(DATABASE_URL=str(tmp_path / "t.db"))
    service = Service(settings)
    host = FastAPI()
    host.include_router(build_router(service))
    install_error_handlers(host)

    @host.get("/their-own-route")
    def theirs() -> dict[str, str]:
        return {"hello": "world"}

    service.start()
    try:
        with TestClient(host) as client, open(source, "rb") as body:
            answer = client.post(
                "/api/backup",
                params={"wait": "true"},
                content=body.read(),
                headers={"content-type": "application/gzip"},
            )
            missing = client.get("/api/backup/progress", params={"id": "x"})
            own = client.get("/their-own-route")
    finally:
        service.stop()
    assert answer.status_code == 200 and answer.json()["success"] is True
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert own.json() == {"hello": "world"}


@pytest.mark.slow
def test_a_500_mb_upload_is_accepted_in_flat_memory(tmp_path: Path) -> None:
    import sqlalchemy as sa

    target = tmp_path / "big.db"
    engine = sa.create_engine(f"sqlite:///{target}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    engine.dispose()
    big = tmp_path / "big.json"
    payload = "x" * 190
    from rowvault.file.writer import BackupWriter

    writer = BackupWriter(big)
    rows = 2_600_000
    writer.write_metadata({"format": "rowvault", "version": 1, "tables": {"blobs": {"count": rows}}})
    writer.begin_table("blobs")
    for start in range(0, rows, 100_000):
        writer.write_records(
            [b'{"id":%d,"payload":"%s"}' % (i, payload.encode()) for i in range(start, start + 100_000)]
        )
    writer.end_table()
    writer.close()
    assert big.stat().st_size > 500 * 1024 * 1024

    with running_server(str(target), tmp_path / "home") as server, server.client() as client:
        before = server.rss_kb()
        with open(big, "rb") as body:
            answer = client.post("/api/backup", content=body, headers={"content-type": "application/json"})
        peak = server.rss_kb("VmHWM")
        if answer.status_code == 202:
            client.post("/api/backup/cancel", params={"id": answer.json()["progressId"]})

    assert answer.status_code == 202, answer.text
    print(f"500 MB upload: server RSS {before // 1024} MB before, peak {peak // 1024} MB")
    assert (peak - before) < 100 * 1024, f"server memory grew by {(peak - before) // 1024} MB"


def test_an_upload_over_the_limit_is_413(tmp_path: Path) -> None:
    target = str(tmp_path / "t.db")
    with running_server(target, tmp_path / "home", env={"ROWVAULT_MAX_UPLOAD_MB": "1"}) as server:
        answer = httpx.post(
            server.url + "/api/backup",
            content=b"{" + b" " * (3 << 20) + b"}",
            headers={"content-type": "application/json"},
            timeout=60,
        )
    assert answer.status_code == 413
    assert "ROWVAULT_MAX_UPLOAD_MB" in answer.json()["detail"]


def test_the_state_store_can_live_in_postgresql(make_db, source: Path, tmp_path: Path) -> None:
    """What several machines share: jobs, progress and locks in PostgreSQL."""
    state = make_db("postgresql")
    target = str(tmp_path / "t.db")
    with running_server(target, tmp_path / "home", env={"ROWVAULT_STATE_URL": state}) as server:
        with server.client() as client, open(source, "rb") as body:
            done = client.post("/api/backup", params={"wait": "true"}, content=body).json()
            listed = client.get("/api/backup/jobs").json()["jobs"]
    assert done["success"] is True and done["processed"] == 800
    assert [j["id"] for j in listed] == [done["progressId"]]
    import sqlalchemy as sa

    with sa.create_engine(state).connect() as conn:
        stored = conn.exec_driver_sql("SELECT status FROM rowvault_jobs").scalars().all()
    assert stored == ["completed"]
