"""The safety snapshot saves only what a restore can change, and undo with it puts the
database back exactly: every row of every table as it was before the restore."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo, metadata
from rowvault.jobs import Job, new_runner
from rowvault.settings import load_settings

from .backupfiles import read_backup, write_backup
from .dbdump import dump

JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}
NOTES = {
    "columns": [
        {"name": "id", "type": "integer", "sqlType": "INTEGER", "nullable": False},
        {"name": "user_id", "type": "integer", "sqlType": "INTEGER", "nullable": True},
        {"name": "body", "type": "string", "sqlType": "TEXT", "nullable": False},
    ],
    "primaryKey": ["id"],
    "foreignKeys": [{"columns": ["user_id"], "references": "users", "referredColumns": ["id"]}],
}


def _top(records: list[dict[str, Any]]) -> int:
    return max(int(r["id"]) for r in records)


def edited_backup(target: str, tmp_path: Path) -> Path:
    """A backup of some rows of `target`, edited: changed rows, new rows (new rows that refer
    to each other in a chain and in a cycle, old rows changed to refer to new ones), rows of
    a table without a key, and a table the target lacks. Other rows are left out."""
    rowvault.backup(target, tmp_path / "now.json")
    meta, t = read_backup(tmp_path / "now.json")
    users, cats = t["users"], t["categories"]
    new_user, new_cat = _top(users) + 1, _top(cats) + 1
    new_dept, new_emp = _top(t["departments"]) + 1, _top(t["employees"]) + 1
    out: dict[str, list[dict[str, Any]]] = {
        "users": [{**u, "name": "Changed"} for u in users[:20]]
        + [{**users[0], "id": new_user + n, "email": f"new{n}@example.test"} for n in range(5)],
        "businesses": [{**b, "owner_id": new_user} for b in t["businesses"][:3]],
        "categories": [
            {**cats[0], "id": new_cat, "parent_id": None, "path": "new"},
            {**cats[0], "id": new_cat + 1, "parent_id": new_cat, "path": "new/1"},
            {**cats[0], "id": new_cat + 2, "parent_id": new_cat + 1, "path": "new/1/2"},
            {**cats[1], "parent_id": new_cat + 2},
        ],
        "departments": [
            {**t["departments"][0], "name": "Renamed"},
            {**t["departments"][0], "id": new_dept, "manager_id": new_emp},
        ],
        "employees": [{**t["employees"][0], "id": new_emp, "department_id": new_dept}],
        "product_categories": [{**pc, "position": 99} for pc in t["product_categories"][:2]]
        + [{**t["product_categories"][0], "category_id": new_cat}],
        "attachments": [
            {**t["attachments"][0], "filename": "changed.bin"},
            {**t["attachments"][0], "id": str(uuid.uuid4())},
        ],
        "opening_hours": t["opening_hours"][:2],
        "daily_metrics": t["daily_metrics"][:5] + [{**m, "value": 1.5} for m in t["daily_metrics"][:3]],
        "notes": [{"id": n, "user_id": users[0]["id"], "body": f"note {n}"} for n in range(3)],
    }
    described = {**meta["tables"], "notes": NOTES}
    meta = {**meta, "tables": {name: described[name] for name in out}}
    return write_backup(tmp_path / "edited.json", meta, out)


def restore_and_undo(target: str, backup: Path, options: dict[str, Any]) -> tuple[Job, Job, Any]:
    """Restore `backup` with a snapshot, then undo it; the jobs and the dump in between."""
    runner = new_runner(load_settings(DATABASE_URL=target))
    try:
        job = runner.run(runner.create_restore(backup, {"snapshot": True, **options}).id)
        assert job.status == "completed", job.error
        between = dump(target, json_columns=JSON_COLUMNS)
        undo = runner.run(runner.create_undo(job.id).id)
    finally:
        runner.close()
        runner.store.close()
    assert undo.status == "completed", undo.error
    return job, undo, between


def test_undo_of_an_upsert_puts_every_row_back(make_db, engine_kind: str, tmp_path: Path) -> None:
    target = make_db(engine_kind)
    build_demo(target, 900)
    before = dump(target, json_columns=JSON_COLUMNS)
    job, undo, between = restore_and_undo(target, edited_backup(target, tmp_path), {})

    assert between != before
    assert job.checkpoint["snapshot"]["mode"] == "upsert"  # by key, not whole tables
    after = dump(target, json_columns=JSON_COLUMNS)
    assert after.pop("notes") == []
    assert after == before
    assert not undo.result["warnings"]


def test_the_snapshot_holds_only_the_rows_the_restore_could_change(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    target = make_db(engine_kind)
    build_demo(target, 900)
    _, tables = read_backup(Path(rowvault.backup(target, tmp_path / "all.json").path))
    job, _, _ = restore_and_undo(target, edited_backup(target, tmp_path), {})

    snapshot = job.checkpoint["snapshot"]
    _, saved = read_backup(Path(snapshot["path"]))
    _, inserted = read_backup(Path(snapshot["inserted"]))
    assert snapshot["created"] == ["notes"]
    assert snapshot["whole"] == ["daily_metrics"]
    assert sorted(u["id"] for u in saved["users"]) == sorted(u["id"] for u in tables["users"][:20])
    assert [b["id"] for b in saved["businesses"]] == [b["id"] for b in tables["businesses"][:3]]
    assert len(saved["daily_metrics"]) == len(tables["daily_metrics"])  # no key: all of it
    assert "audit_logs" not in saved and "business_products" not in saved
    top = max(u["id"] for u in tables["users"])
    assert sorted(u["id"] for u in inserted["users"]) == [top + n for n in range(1, 6)]
    assert list(inserted["users"][0]) == ["id"]  # keys only
    assert len(inserted["categories"]) == 3 and len(inserted["attachments"]) == 1


def test_undo_of_a_replace_puts_every_row_back(make_db, engine_kind: str, tmp_path: Path) -> None:
    target = make_db(engine_kind)
    build_demo(target, 900)
    before = dump(target, json_columns=JSON_COLUMNS)
    options = {"mode": "replace", "confirmReplace": True}
    job, _, between = restore_and_undo(target, edited_backup(target, tmp_path), options)

    assert between != before
    assert job.checkpoint["snapshot"]["mode"] == "replace"
    after = dump(target, json_columns=JSON_COLUMNS)
    assert after.pop("notes") == []
    assert after == before


def test_into_empty_tables_nothing_is_saved_and_undo_empties_them(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, 600)
    full = rowvault.backup(source, tmp_path / "full.json.gz").path
    engine = sa.create_engine(target)
    metadata.create_all(engine)
    engine.dispose()
    before = dump(target)
    job, _, between = restore_and_undo(target, Path(full), {})

    snapshot = job.checkpoint["snapshot"]
    assert sorted(snapshot["empty"]) == sorted(metadata.tables)
    assert snapshot["tables"] == [] and not Path(snapshot["path"]).exists()
    assert all(between[name] for name in metadata.tables)
    assert dump(target) == before


def test_undo_of_a_restore_that_created_the_tables_empties_them(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, 600)
    full = rowvault.backup(source, tmp_path / "full.json.gz").path
    job, _, between = restore_and_undo(target, Path(full), {})

    assert sorted(job.checkpoint["snapshot"]["created"]) == sorted(metadata.tables)
    assert all(between[name] for name in metadata.tables)
    after = dump(target)
    assert {name: rows for name, rows in after.items() if rows} == {}


def test_undo_after_a_new_row_collided_on_another_unique_key(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    """A new record (new id) with the email of an existing user: whatever the engine's upsert
    does with it, undo leaves every user as it was."""
    target = make_db(engine_kind)
    build_demo(target, 300)
    before = dump(target, json_columns=JSON_COLUMNS)
    rowvault.backup(target, tmp_path / "now.json")
    meta, tables = read_backup(tmp_path / "now.json")
    users = tables["users"]
    edited = {"users": [{**users[0], "id": _top(users) + 1, "name": "Took the email"}]}
    described = {"users": meta["tables"]["users"]}
    restore_and_undo(
        target, write_backup(tmp_path / "edited.json", {**meta, "tables": described}, edited), {}
    )
    assert dump(target, json_columns=JSON_COLUMNS) == before
