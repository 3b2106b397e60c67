"""The HTTP API against a real uvicorn server on a loopback port (DESIGN.md §3)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo
from rowvault.demo import metadata as demo_metadata

from .backupfiles import read_backup, write_backup
from .dbdump import counts, dump
from .server import poll_until_finished, running_server

RECORDS = 20_000
SLOW = {"RESTORE_BATCH_SIZE": "250", "RESTORE_BATCH_DELAY_MS": "50"}  # 80 batches, 4 s or more


@pytest.fixture(scope="module")
def backup_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    build_demo(folder / "source.db", RECORDS)
    path = folder / "backup.json.gz"
    rowvault.backup(folder / "source.db", path)
    return path


@pytest.fixture
def target(tmp_path: Path) -> str:
    return str(tmp_path / "target.db")


def upload(client: httpx.Client, path: Path, **params: object) -> httpx.Response:
    with open(path, "rb") as body:
        return client.post(
            "/api/backup", params=params, content=body, headers={"content-type": "application/gzip"}
        )


def test_a_background_restore_reports_progress_that_only_grows(
    backup_file: Path, target: str, tmp_path: Path
) -> None:
    steady = {"RESTORE_BATCH_SIZE": "500", "RESTORE_BATCH_DELAY_MS": "25"}  # about 1.5 s
    with running_server(target, tmp_path / "home", env=steady) as server:
        with server.client() as client:
            started = upload(client, backup_file)
            assert started.status_code == 202, started.text
            job_id = started.json()["progressId"]
            first = client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]
            records = poll_until_finished(client, job_id)

    assert first["status"] in ("queued", "running"), "answered before the restore was done"
    processed = [r["processed"] for r in records]
    assert processed == sorted(processed), "processed never goes down"
    assert len(set(processed)) >= 3, "several intermediate values were seen"
    last = records[-1]
    assert last["model"] == "completed" and last["status"] == "completed"
    assert last["processed"] == last["total"] == RECORDS
    assert all(c["processed"] == c["total"] for c in last["counts"].values())
    assert {"startedAt", "updatedAt", "finishedAt", "rate", "etaSeconds", "errorCount"} <= set(last)
    assert sum(counts("sqlite:///" + target).values()) == RECORDS


def test_wait_true_answers_with_the_result(backup_file: Path, target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        answer = upload(client, backup_file, wait="true")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True
    assert body["processed"] == body["total"] == RECORDS
    assert body["errors"] == []
    assert body["results"]["users"]["processed"] == body["results"]["users"]["total"] > 0
    assert set(body["results"]["users"]) >= {"processed", "total", "errors"}


def test_an_unknown_progress_id_is_404(target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        answer = client.get("/api/backup/progress", params={"id": "no-such-job"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "not_found", "detail": "no job with id 'no-such-job'"}


def test_a_second_restore_on_the_same_database_is_409(backup_file: Path, target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home", env=SLOW) as server, server.client() as client:
        first = upload(client, backup_file).json()["progressId"]
        second = upload(client, backup_file)
        client.post("/api/backup/cancel", params={"id": first})
        poll_until_finished(client, first)

    assert second.status_code == 409
    assert second.json()["progressId"] == first
    assert second.json()["error"] == "conflict"


def test_the_token_is_required_when_set(backup_file: Path, target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home", token="s3cret") as server:
        anonymous = httpx.get(server.url + "/api/backup/jobs")
        wrong = httpx.get(server.url + "/api/backup/jobs", headers={"Authorization": "Bearer nope"})
        health = httpx.get(server.url + "/healthz")
        with server.client() as client:
            allowed = client.get("/api/backup/jobs")
            refused_upload = httpx.post(server.url + "/api/backup", content=b"{}")

    assert anonymous.status_code == wrong.status_code == refused_upload.status_code == 401
    assert anonymous.json()["error"] == "unauthorized"
    assert health.status_code == 200
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"this is not json", "application/json", "text that is not JSON"),
        (b'[{"id": 1}]', "application/json", "a JSON array"),
        (b"\x1f\x8b\x08\x00garbage-not-really-gzip", "application/gzip", "gzip"),
        (b'{"no_such_table": [{"id": 1}]}', "application/json", "'no_such_table'"),
        (b"", "application/json", "empty"),
    ],
)
def test_a_malformed_upload_is_400_and_changes_nothing(
    body: bytes, content_type: str, words: str, target: str, tmp_path: Path
) -> None:
    build_demo(target, 300)
    before = dump("sqlite:///" + target)
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        answer = client.post("/api/backup", content=body, headers={"content-type": content_type})
        jobs = client.get("/api/backup/jobs").json()["jobs"]

    assert answer.status_code == 400, answer.text
    assert words in answer.json()["detail"]
    assert set(answer.json()) >= {"error", "detail"}
    assert dump("sqlite:///" + target) == before
    assert jobs == []
    assert list((tmp_path / "home" / "uploads").iterdir()) == [], "refused uploads are deleted"


def test_the_original_front_ends_calls_work_unchanged(backup_file: Path, target: str, tmp_path: Path) -> None:
    """POST {"backupData": {...}} as JSON, then poll /api/backup/progress?id= to completion."""
    _, tables = read_backup(backup_file)
    document = {"backupData": {"metadata": {"version": "1.0", "exportedAt": "2024-01-01"}, **tables}}
    demo_metadata.create_all(sa.create_engine("sqlite:///" + target))  # the application's schema
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        response = client.post("/api/backup", json=document)
        assert response.status_code == 202, response.text
        progress_id = response.json()["progressId"]
        while True:
            progress = client.get(f"/api/backup/progress?id={progress_id}").json()["progress"]
            if progress["model"] in ("completed", "error"):
                break
            time.sleep(0.05)

    assert progress["model"] == "completed"
    assert progress["processed"] == progress["total"] == RECORDS
    assert progress["errors"] == []


def test_options_in_the_body_are_used(backup_file: Path, target: str, tmp_path: Path) -> None:
    _, tables = read_backup(backup_file)
    document = {"backupData": tables, "options": {"dryRun": True, "batchSize": 700}}
    demo_metadata.create_all(sa.create_engine("sqlite:///" + target))
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        job_id = client.post("/api/backup", json=document).json()["progressId"]
        poll_until_finished(client, job_id)
        job = client.get(f"/api/backup/jobs/{job_id}").json()

    assert job["options"] == {"dryRun": True, "batchSize": 700}
    assert job["result"]["processed"] == RECORDS
    assert sum(counts("sqlite:///" + target).values()) == 0, "a dry run writes nothing"


def test_a_multipart_upload_with_options(backup_file: Path, target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        with open(backup_file, "rb") as body:
            answer = client.post(
                "/api/backup",
                params={"wait": "true"},
                files={"file": ("backup.json.gz", body, "application/gzip")},
                data={"batchSize": "900", "mode": "upsert"},
            )
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True


def test_server_sent_events_follow_the_job_to_its_end(backup_file: Path, target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home", env={"RESTORE_BATCH_SIZE": "1000"}) as server:
        with server.client() as client:
            job_id = upload(client, backup_file).json()["progressId"]
            events = []
            with client.stream("GET", "/api/backup/progress/stream", params={"id": job_id}) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))

    assert events[-1]["status"] == "completed"
    assert events[-1]["processed"] == RECORDS
    processed = [e["processed"] for e in events]
    assert processed == sorted(processed)


def test_cancel_then_resume_finishes_the_restore(backup_file: Path, target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home", env=SLOW) as server, server.client() as client:
        job_id = upload(client, backup_file).json()["progressId"]
        while (
            client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]["processed"] < 2000
        ):
            time.sleep(0.05)
        assert client.post("/api/backup/cancel", params={"id": job_id}).status_code == 202
        stopped = poll_until_finished(client, job_id)[-1]
        resumed = client.post("/api/backup/resume", params={"id": job_id})
        finished = poll_until_finished(client, job_id)[-1]

    assert stopped["status"] == "cancelled"
    assert 0 < stopped["processed"] < RECORDS
    assert resumed.status_code == 202
    assert finished["status"] == "completed"
    assert sum(counts("sqlite:///" + target).values()) == RECORDS


def test_a_job_whose_server_died_is_interrupted_and_resumes(
    backup_file: Path, target: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with running_server(target, home, env=SLOW) as server, server.client() as client:
        job_id = upload(client, backup_file).json()["progressId"]
        while (
            client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]["processed"] < 2000
        ):
            time.sleep(0.05)
        server.kill()
    with running_server(target, home) as server, server.client() as client:
        after_restart = client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]
        resumed = client.post("/api/backup/resume", params={"id": job_id})
        finished = poll_until_finished(client, job_id)[-1]

    assert after_restart["status"] == "interrupted"
    assert resumed.status_code == 202
    assert finished["status"] == "completed"
    assert sum(counts("sqlite:///" + target).values()) == RECORDS


def test_a_finished_jobs_progress_survives_a_restart(backup_file: Path, target: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_server(target, home) as server, server.client() as client:
        job_id = upload(client, backup_file, wait="true").json()["progressId"]
    with running_server(target, home) as server, server.client() as client:
        progress = client.get("/api/backup/progress", params={"id": job_id})
        jobs = client.get("/api/backup/jobs").json()["jobs"]

    assert progress.status_code == 200
    assert progress.json()["progress"]["model"] == "completed"
    assert progress.json()["progress"]["processed"] == RECORDS
    assert [j["id"] for j in jobs] == [job_id]


def test_rejected_records_can_be_downloaded(backup_file: Path, target: str, tmp_path: Path) -> None:
    metadata, tables = read_backup(backup_file)
    tables["daily_metrics"][0]["value"] = "lots"
    tables["daily_metrics"][1]["value"] = "more"
    spoiled = write_backup(tmp_path / "spoiled.json.gz", metadata, tables)
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        answer = upload(client, spoiled, wait="true").json()
        rejects = client.get(f"/api/backup/jobs/{answer['progressId']}/rejects")
        errors = client.get(f"/api/backup/jobs/{answer['progressId']}/errors")

    assert answer["success"] is False and len(answer["errors"]) == 2
    assert rejects.status_code == 200
    rejected = tmp_path / "rejects.json"
    rejected.write_bytes(rejects.content)
    _, back = read_backup(rejected)
    assert [r["value"] for r in back["daily_metrics"]] == ["lots", "more"]
    assert errors.text.count("\n") == 2


def test_the_download_is_a_backup_that_restores(target: str, tmp_path: Path) -> None:
    build_demo(target, 2000)
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        plain = client.get("/api/backup")
        zipped = client.get("/api/backup", params={"gzip": "true", "auditLogLimit": 10})
        bad = client.get("/api/backup", params={"tables": "nope"})

    assert plain.status_code == 200 and "attachment" in plain.headers["content-disposition"]
    path = tmp_path / "download.json"
    path.write_bytes(plain.content)
    restored = tmp_path / "restored.db"
    assert rowvault.restore(restored, path).success
    assert counts(f"sqlite:///{restored}") == counts("sqlite:///" + target)
    _, tables = read_backup(_save(tmp_path / "download.json.gz", gzip.decompress(zipped.content)))
    assert len(tables["audit_logs"]) == 10
    assert bad.status_code == 400 and "nope" in bad.json()["detail"]


def _save(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_jobs_are_listed_newest_first(backup_file: Path, target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        ids = [upload(client, backup_file, wait="true", dryRun="true").json()["progressId"] for _ in range(3)]
        jobs = client.get("/api/backup/jobs").json()["jobs"]
    assert [j["id"] for j in jobs] == list(reversed(ids))
    assert all(j["status"] == "completed" for j in jobs)


def test_openapi_is_served(target: str, tmp_path: Path) -> None:
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        spec = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert "/api/backup" in spec["paths"] and "/api/backup/progress" in spec["paths"]
    assert docs.status_code == 200


def test_a_download_link_works_for_a_minute_without_the_header(target: str, tmp_path: Path) -> None:
    build_demo(target, 300)
    with running_server(target, tmp_path / "home", token="s3cret") as server, server.client() as client:
        link = client.post("/api/downloads", json={"url": "/api/backup?gzip=true&tables=users"})
        wrong = client.post("/api/downloads", json={"url": "/api/backup?tables=nope"})
        not_a_download = client.post("/api/downloads", json={"url": "/api/backup/jobs"})
        url = link.json()["url"]
        followed = httpx.get(server.url + url)
        tampered = httpx.get(server.url + url.replace("tables=users", "tables=businesses"))
        bare = httpx.get(server.url + "/api/backup?gzip=true&tables=users")

    assert link.status_code == 200 and "ticket=" in url
    assert followed.status_code == 200
    assert followed.headers["content-type"] == "application/gzip"
    assert tampered.status_code == bare.status_code == 401
    assert wrong.status_code == 400 and "'nope'" in wrong.json()["detail"]
    assert not_a_download.status_code == 400


def test_tickets_expire() -> None:
    from rowvault.web.tickets import TICKET_SECONDS, Tickets

    tickets = Tickets("key")
    signed = tickets.sign("/api/backup?gzip=true", now=1000.0)
    path, _, query = signed.partition("?")
    items = [tuple(pair.split("=", 1)) for pair in query.split("&")]
    assert tickets.check(path, items, now=1000.0 + TICKET_SECONDS - 1)  # type: ignore[arg-type]
    assert not tickets.check(path, items, now=1000.0 + TICKET_SECONDS + 1)  # type: ignore[arg-type]
    assert not Tickets("other key").check(path, items, now=1000.0)  # type: ignore[arg-type]
