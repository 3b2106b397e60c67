"""Nothing blocking runs on the web face's event loop (issue 11, item 11).

Every state store query, file scan, database check and file lookup the routes cause is
recorded with whether it ran on the event loop's thread; the app is the real one
(`create_app`, jobs on this process's threads, a SQLite database), driven over every route
a restore and a backup job go through. A call on the loop would stall every other client
(and the page's event streams) for as long as it takes: seconds for a scan.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import rowvault
from rowvault.demo import build_demo
from rowvault.file.reader import BackupFile
from rowvault.jobs import intake
from rowvault.jobs.store import StateStore
from rowvault.settings import load_settings
from rowvault.web import backups as web_backups
from rowvault.web import create_app, uploads

BLOCKING = {
    (StateStore, name)
    for name in (
        "get",
        "recent",
        "add",
        "save",
        "update",
        "errors",
        "try_lock",
        "unlock",
        "touch_lock",
        "lock_holder",
    )
} | {(BackupFile, "scan")}
MODULE_FUNCTIONS = [(intake, "validate"), (uploads, "read_body_options"), (web_backups, "file_of")]
HEADERS = {"x-rowvault": "1"}


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(name, ran on the event loop) for every blocking call, in order."""
    seen: list[tuple[str, bool]] = []

    def spy(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, _on_event_loop()))
            return original(*args, **kwargs)

        return recorded

    for owner, name in BLOCKING:
        monkeypatch.setattr(owner, name, spy(f"{owner.__name__}.{name}", getattr(owner, name)))
    for module, name in MODULE_FUNCTIONS:
        monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    return seen


@pytest.fixture
def backup_file(tmp_path: Path) -> Path:
    build_demo(tmp_path / "source.db", 2_000)
    path = tmp_path / "backup.json.gz"
    rowvault.backup(tmp_path / "source.db", path)
    return path


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(DATABASE_URL=str(tmp_path / "t.db"), jobs="thread", home=tmp_path / "home")
    with TestClient(create_app(settings, host="127.0.0.1", port=8000), base_url="http://127.0.0.1:8000") as c:
        yield c


def _finish(client: TestClient, job_id: str) -> dict[str, Any]:
    events = client.get("/api/backup/progress/stream", params={"id": job_id})
    assert events.status_code == 200
    return client.get(f"/api/backup/jobs/{job_id}").json()


def test_no_route_blocks_the_event_loop(
    client: TestClient, backup_file: Path, calls: list[tuple[str, bool]]
) -> None:
    body = backup_file.read_bytes()
    gz = {**HEADERS, "content-type": "application/gzip"}
    started = client.post("/api/backup", content=body, headers=gz)  # scanned and checked here
    assert started.status_code == 202, started.text
    restore_id = started.json()["progressId"]
    assert _finish(client, restore_id)["status"] == "completed"
    busy_check = client.post("/api/backup", params={"wait": "true"}, content=body, headers=gz)
    assert busy_check.status_code == 200, busy_check.text
    later = client.post("/api/backup", content=body, headers={**gz, "prefer": "respond-async"})
    assert later.status_code == 202
    assert _finish(client, later.json()["progressId"])["status"] == "completed"
    form = client.post(
        "/api/backup",
        files={"file": ("backup.json", io.BytesIO(gzip.decompress(body)), "application/json")},
        data={"mode": "upsert"},
        headers=HEADERS,
    )
    assert form.status_code == 202, form.text
    _finish(client, form.json()["progressId"])
    wrapped = b'{"backupData": ' + gzip.decompress(body) + b', "options": {"mode": "upsert"}}'
    in_body = client.post(
        "/api/backup", content=wrapped, headers={**HEADERS, "content-type": "application/json"}
    )
    assert in_body.status_code == 202, in_body.text
    _finish(client, in_body.json()["progressId"])
    not_a_backup = client.post("/api/backup", content=b"PK\x03\x04zip", headers=gz)
    assert not_a_backup.status_code == 400

    assert client.get("/api/backup/progress", params={"id": restore_id}).status_code == 200
    assert client.get("/api/backup/jobs").status_code == 200
    assert client.get(f"/api/backup/jobs/{restore_id}/rejects").status_code == 404
    assert client.get(f"/api/backup/jobs/{restore_id}/errors").status_code == 200
    assert client.get("/api/backup/progress", params={"id": "0" * 32}).status_code == 404
    assert client.post("/api/backup/cancel", params={"id": restore_id}, headers=HEADERS).status_code == 409

    backup_job = client.post("/api/backup/jobs", json={"gzip": True}, headers=HEADERS)
    assert backup_job.status_code == 202, backup_job.text
    backup_id = backup_job.json()["progressId"]
    assert _finish(client, backup_id)["download"] is True
    assert client.get(f"/api/backup/jobs/{backup_id}/file").status_code == 200
    link = client.post("/api/downloads", json={"url": f"/api/backup/jobs/{backup_id}/file"}, headers=HEADERS)
    assert link.status_code == 200, link.text
    assert client.get("/api/tables").status_code == 200

    names = {name for name, _ in calls}
    assert {"StateStore.try_lock", "BackupFile.scan", "validate", "file_of", "read_body_options"} <= names
    on_loop = sorted({name for name, loop in calls if loop})
    assert on_loop == [], f"called on the event loop: {on_loop}"
