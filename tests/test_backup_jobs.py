"""Backups as jobs over HTTP (issue 11 item 10), against a real `rowvault serve` on SQLite and
PostgreSQL: the tables a backup can hold, a backup job followed over the restore's routes
(progress, events, job list, cancel) and its file downloaded; a request's options checked
before a job is recorded, and no name or path from a request ever reaching the disk."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import rowvault
from rowvault.demo import build_demo

from .dbdump import counts
from .server import poll_until_finished, running_server

RECORDS = 5_000


def start(client: httpx.Client, **body: object) -> str:
    answer = client.post("/api/backup/jobs", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["progressId"])


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_backup_job_reports_progress_then_offers_its_file(
    kind: str, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    url = make_db(kind)
    build_demo(url, RECORDS)
    home = tmp_path / "home"
    with running_server(url, home) as server, server.client() as client:
        listed = client.get("/api/tables").json()
        names = [t["name"] for t in listed["tables"]]
        assert "audit_logs" in names and "rowvault_pending_ddl" not in names
        assert {t["name"]: t["demoColumn"] for t in listed["tables"]}["users"] == "is_demo"
        assert listed["demoData"] is True

        job_id = start(client, limits={"audit_logs": 7}, includeDemoData=False)
        records = poll_until_finished(client, job_id)
        with client.stream("GET", "/api/backup/progress/stream", params={"id": job_id}) as events:
            last = [line for line in events.iter_lines() if line.startswith("data: ")][-1]
        summary = client.get(f"/api/backup/jobs/{job_id}").json()
        listing = client.get("/api/backup/jobs").json()["jobs"]
        file = client.get(f"/api/backup/jobs/{job_id}/file")

    processed = [r["processed"] for r in records]
    assert processed == sorted(processed)
    final = records[-1]
    assert final["status"] == "completed" and final["model"] == "completed"
    assert final["processed"] == final["total"] > 0
    assert '"status":"completed"' in last
    assert summary["kind"] == "backup" and summary["download"] is True and summary["resumable"] is False
    assert summary["file"].startswith("rowvault-backup-") and summary["file"].endswith(".json.gz")
    assert summary["result"]["tables"]["audit_logs"] == 7 and "path" not in summary["result"]
    assert [j["id"] for j in listing] == [job_id]
    assert file.status_code == 200
    assert file.headers["content-type"] == "application/gzip"
    assert summary["file"] in file.headers["content-disposition"]
    assert [p.name for p in (home / "backups").iterdir()] == [f"{job_id}.json.gz"]

    saved = tmp_path / "downloaded.json.gz"
    saved.write_bytes(file.content)
    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    rowvault.restore(restored, saved)
    got = counts(restored)
    assert got["audit_logs"] == 7
    assert sum(got.values()) == final["total"]


def test_a_backup_request_is_checked_before_any_job_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    build_demo(f"sqlite:///{db}", 500)
    home = tmp_path / "home"
    with running_server(db, home) as server, server.client() as client:
        unknown = client.post("/api/backup/jobs", json={"tables": ["user"]})
        negative = client.post("/api/backup/jobs", json={"limits": {"users": -1}})
        fraction = client.post("/api/backup/jobs", json={"limits": {"users": 1.5}})
        a_path = client.post("/api/backup/jobs", json={"output": "/tmp/evil.json"})
        as_a_form = httpx.post(  # what another site's page can send without asking first
            server.url + "/api/backup/jobs", content=b"{}", headers={"content-type": "text/plain"}
        )
        jobs = client.get("/api/backup/jobs").json()["jobs"]
        plain = start(client, gzip=False, tables=["users"])
        poll_until_finished(client, plain)
        file = client.get(f"/api/backup/jobs/{plain}/file")

    assert unknown.status_code == 400
    assert "no table named 'user'" in unknown.json()["detail"]
    assert negative.status_code == 422 and fraction.status_code == 422
    assert a_path.status_code == 422, "a field naming a file is refused, not ignored"
    assert as_a_form.status_code == 403, "a cross-site POST cannot start a backup"
    assert jobs == []
    assert file.headers["content-type"] == "application/json"
    assert file.json()["metadata"]["tables"].keys() == {"users"}
    assert sorted(p.name for p in (home / "backups").iterdir()) == [f"{plain}.json"]
    assert not Path("/tmp/evil.json").exists()


def test_the_file_route_answers_only_for_a_completed_backup(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    build_demo(f"sqlite:///{db}", 500)
    backup = tmp_path / "b.json.gz"
    rowvault.backup(f"sqlite:///{db}", backup)
    with running_server(tmp_path / "target.db", tmp_path / "home") as server, server.client() as client:
        restored = client.post(
            "/api/backup",
            params={"wait": "true"},
            content=backup.read_bytes(),
            headers={"content-type": "application/gzip"},
        ).json()["progressId"]
        of_restore = client.get(f"/api/backup/jobs/{restored}/file")
        unknown = client.get("/api/backup/jobs/0123456789abcdef0123456789abcdef/file")
        traversal = client.get("/api/backup/jobs/..%2F..%2Fstate.db/file")
        ticket = client.post("/api/downloads", json={"url": f"/api/backup/jobs/{restored}/file"})
        resumed = client.post("/api/backup/resume", params={"id": restored})
    assert of_restore.status_code == 404
    assert unknown.status_code == 404
    assert traversal.status_code == 404
    assert ticket.status_code == 404
    assert resumed.status_code in (202, 409)  # a restore's routes are as before


def test_a_backup_job_can_be_cancelled_and_leaves_no_file(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    build_demo(f"sqlite:///{db}", 100_000)
    home = tmp_path / "home"
    with running_server(db, home, env={"ROWVAULT_JOBS": "thread"}) as server, server.client() as client:
        job_id = start(client)
        deadline = time.monotonic() + 30
        while client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]["processed"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        cancelled = client.post("/api/backup/cancel", params={"id": job_id})
        records = poll_until_finished(client, job_id)
        summary = client.get(f"/api/backup/jobs/{job_id}").json()
        file = client.get(f"/api/backup/jobs/{job_id}/file")
        resume = client.post("/api/backup/resume", params={"id": job_id})
    assert cancelled.status_code == 202
    assert records[-1]["status"] == "cancelled", records[-1]
    assert 0 < records[-1]["processed"] < records[-1]["total"]
    assert summary["download"] is False and summary["resumable"] is False
    assert file.status_code == 404
    assert resume.status_code == 409 and "start a new one" in resume.json()["detail"]
    assert list((home / "backups").iterdir()) == []


def test_prefer_respond_async_makes_the_check_the_jobs_first_stage(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    build_demo(f"sqlite:///{db}", 2_000)
    good = tmp_path / "good.json.gz"
    rowvault.backup(f"sqlite:///{db}", good)
    bad = b'{"metadata": {"format": "rowvault", "version": 1, "tables": {"t": {"count": 3}}}}'
    headers = {"content-type": "application/json"}
    with running_server(tmp_path / "target.db", tmp_path / "home") as server, server.client() as client:
        refused = client.post("/api/backup", content=bad, headers=headers)  # as before: checked first
        later = client.post("/api/backup", content=bad, headers={**headers, "prefer": "respond-async"})
        failed = poll_until_finished(client, later.json()["progressId"])[-1]
        started = client.post(
            "/api/backup",
            content=good.read_bytes(),
            headers={"content-type": "application/gzip", "prefer": "respond-async"},
        )
        done = poll_until_finished(client, started.json()["progressId"])[-1]
    assert refused.status_code == 400 and "the metadata lists 3 records" in refused.json()["detail"]
    assert later.status_code == 202 and later.headers["preference-applied"] == "respond-async"
    assert failed["status"] == "error" and "the metadata lists 3 records" in failed["error"]
    assert done["status"] == "completed" and done["processed"] == 2_000
    assert sum(counts(f"sqlite:///{tmp_path / 'target.db'}").values()) == 2_000
