"""A restore run with a safety snapshot can be undone: every table it wrote into goes back to
what it held, and the tables it created are emptied."""

from __future__ import annotations

from pathlib import Path

import pytest

import rowvault
from rowvault.demo import build_demo
from rowvault.jobs import new_runner
from rowvault.settings import load_settings

from .backupfiles import read_backup, write_backup
from .dbdump import dump
from .server import poll_until_finished, running_server

JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}
NOTES = {
    "count": 0,
    "columns": [
        {"name": "id", "type": "integer", "sqlType": "INTEGER", "nullable": False},
        {"name": "user_id", "type": "integer", "sqlType": "INTEGER", "nullable": True},
        {"name": "body", "type": "string", "sqlType": "TEXT", "nullable": False},
    ],
    "primaryKey": ["id"],
    "foreignKeys": [{"columns": ["user_id"], "references": "users", "referredColumns": ["id"]}],
}


def changed_backup(target: str, tmp_path: Path) -> Path:
    """A backup of `target`, edited: renamed users, new products, a new table."""
    rowvault.backup(target, tmp_path / "now.json")
    metadata, tables = read_backup(tmp_path / "now.json")
    for user in tables["users"][:25]:
        user["name"] = "Changed Name"
    top = max(p["id"] for p in tables["business_products"])
    first = dict(tables["business_products"][0])
    for n in range(1, 11):
        tables["business_products"].append({**first, "id": top + n, "sku": f"NEW-{n}"})
    tables["notes"] = [{"id": n, "user_id": tables["users"][0]["id"], "body": f"note {n}"} for n in range(5)]
    metadata = {**metadata, "tables": {**metadata["tables"], "notes": NOTES}}
    return write_backup(tmp_path / "changed.json", metadata, tables)


def test_undo_puts_every_table_back(make_db, engine_kind: str, tmp_path: Path) -> None:
    target = make_db(engine_kind)
    build_demo(target, 1200)
    before = dump(target, json_columns=JSON_COLUMNS)
    changed = changed_backup(target, tmp_path)
    runner = new_runner(load_settings(DATABASE_URL=target))
    try:
        job = runner.create_restore(changed, {"snapshot": True})
        job = runner.run(job.id)
        assert job.status == "completed", job.error
        assert dump(target, json_columns=JSON_COLUMNS) != before
        assert job.checkpoint["snapshot"]["created"] == ["notes"]

        undo = runner.run(runner.create_undo(job.id).id)
        again = runner.create_undo
    finally:
        runner.close()
        runner.store.close()

    assert undo.status == "completed", undo.error
    after = dump(target, json_columns=JSON_COLUMNS)
    assert after.pop("notes") == []
    assert after == before
    with pytest.raises(rowvault.RowvaultError, match="already undone"):
        again(job.id)


def test_undo_over_http(tmp_path: Path) -> None:
    target = str(tmp_path / "t.db")
    build_demo(target, 800)
    before = dump("sqlite:///" + target, json_columns=JSON_COLUMNS)
    changed = changed_backup(target, tmp_path)
    with running_server(target, tmp_path / "home") as server, server.client() as client:
        with open(changed, "rb") as body:
            done = client.post("/api/backup", params={"wait": "true", "snapshot": "true"}, content=body)
        job_id = done.json()["progressId"]
        listed = client.get(f"/api/backup/jobs/{job_id}").json()
        started = client.post("/api/backup/undo", params={"id": job_id})
        undo_id = started.json()["progressId"]
        finished = poll_until_finished(client, undo_id)[-1]
        refused = client.post("/api/backup/undo", params={"id": job_id})
        without = client.post("/api/backup/undo", params={"id": undo_id})

    assert done.json()["success"] is True
    assert listed["snapshot"] is True
    assert started.status_code == 202 and finished["status"] == "completed"
    after = dump("sqlite:///" + target, json_columns=JSON_COLUMNS)
    assert after.pop("notes") == []
    assert after == before
    assert refused.status_code == 409 and "already undone" in refused.json()["detail"]
    assert without.status_code == 409 and "no safety snapshot" in without.json()["detail"]
