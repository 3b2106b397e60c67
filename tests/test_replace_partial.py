"""`replace` and undo of a backup that holds only some tables, while other tables refer to
them (issue 8): rows the others still refer to are kept and updated in place, the rest are
replaced, tables outside the backup are never touched, and a kept row the backup lacks is a
warning that names the table referring to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import rowvault
from rowvault import RestoreAborted, demo
from rowvault.demo import build_demo
from rowvault.jobs import new_runner
from rowvault.restore import Resume
from rowvault.settings import load_settings

from .backupfiles import read_backup, write_backup
from .dbdump import Dump, dump

JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTORE_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        timeout=300,
    )


def contents(url: str) -> Dump:
    return dump(url, json_columns=JSON_COLUMNS)


def user(id_: int) -> dict[str, Any]:
    return {
        "id": id_,
        "email": f"u{id_}@example.org",
        "name": f"User {id_}",
        "role": "member",
        "is_demo": False,
        "created_at": WHEN,
    }


def change_the_database(url: str) -> None:
    """Edit users and categories; add a user nothing refers to (9001), and a user (9002) and
    a category (9003) that rows of tables outside the backup refer to."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(demo.users.update().where(demo.users.c.id <= 5).values(name="Changed"))
        conn.execute(demo.users.insert(), [user(9001), user(9002)])
        conn.execute(
            demo.businesses.insert().values(
                id=9002,
                owner_id=9002,
                name="Kept",
                slug="kept-9002",
                is_demo=False,
                created_at=WHEN,
                updated_at=WHEN,
            )
        )
        conn.execute(demo.categories.update().where(demo.categories.c.id <= 3).values(name="Changed"))
        conn.execute(demo.categories.insert().values(id=9003, parent_id=1, name="Kept", path="/kept"))
        product = conn.execute(sa.select(sa.func.min(demo.business_products.c.id))).scalar()
        conn.execute(
            demo.product_categories.insert().values(product_id=product, category_id=9003, position=1)
        )
    engine.dispose()


def row(rows: list[tuple[Any, ...]], id_: int) -> tuple[Any, ...]:
    return next(r for r in rows if r[0] == id_)


def replaced(original: Dump, changed: Dump) -> Dump:
    """What a replace of users and categories from `original` must leave in `changed`: the
    backup's rows as they were, and the rows other tables refer to. (A kept category loses
    its parent: `parent_id` closes a cycle, so it is emptied before the deletes.)"""
    kept_category = (9003, None, *row(changed["categories"], 9003)[2:])
    return {
        **changed,
        "users": sorted([*original["users"], row(changed["users"], 9002)], key=repr),
        "categories": sorted([*original["categories"], kept_category], key=repr),
    }


def prepared(make_db: Any, kind: str, tmp_path: Path) -> tuple[str, Path, Dump, Dump]:
    """A demo database, a backup of its users and categories, then the database changed."""
    target = make_db(kind)
    build_demo(target, 800)
    original = contents(target)
    backup = tmp_path / "users.json.gz"
    rowvault.backup(target, backup, tables=["users", "categories"])
    change_the_database(target)
    return target, backup, original, contents(target)


def assert_kept_warnings(warnings: list[str]) -> None:
    assert any("'users': 1 row(s)" in w and "'businesses'" in w for w in warnings), warnings
    assert any(
        "'categories': 1 row(s)" in w and "'product_categories'" in w and "parent_id emptied" in w
        for w in warnings
    ), warnings


def test_replace_keeps_referenced_rows_and_updates_them_in_place(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    target, backup, original, changed = prepared(make_db, engine_kind, tmp_path)

    result = rowvault.restore(target, backup, mode="replace", confirm_replace=True)

    assert result.success, result.errors[:3]
    assert contents(target) == replaced(original, changed)
    assert_kept_warnings(result.warnings)


def test_replace_from_the_cli(make_db, engine_kind: str, tmp_path: Path) -> None:
    target, backup, original, changed = prepared(make_db, engine_kind, tmp_path)

    done = cli("restore", str(backup), "--db", target, "--mode", "replace", "--yes", "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["success"] is True and answer["errors"] == []
    assert_kept_warnings(answer["warnings"])
    assert contents(target) == replaced(original, changed)


def test_undo_of_a_partial_replace_from_the_cli(make_db, engine_kind: str, tmp_path: Path) -> None:
    target, backup, _, changed = prepared(make_db, engine_kind, tmp_path)
    done = cli("restore", str(backup), "--db", target, "--mode", "replace", "--yes", "--snapshot", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = json.loads(done.stdout)["progressId"]

    undone = cli("undo", job_id, "--db", target)

    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "error" not in undone.stdout.lower(), undone.stdout
    assert contents(target) == changed


def edited_users(target: str, tmp_path: Path) -> Path:
    """A backup of the users alone, with some renamed and one added."""
    rowvault.backup(target, tmp_path / "now.json", tables=["users"])
    metadata, tables = read_backup(tmp_path / "now.json")
    for record in tables["users"][:10]:
        record["name"] = "Renamed"
    tables["users"].append({**tables["users"][0], "id": 9500, "email": "new@example.org"})
    return write_backup(tmp_path / "edited.json", metadata, tables)


def test_undo_of_a_restore_of_only_the_users_from_the_cli(make_db, engine_kind: str, tmp_path: Path) -> None:
    target = make_db(engine_kind)
    build_demo(target, 800)
    before = contents(target)
    edited = edited_users(target, tmp_path)
    done = cli("restore", str(edited), "--db", target, "--snapshot", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert contents(target) != before

    undone = cli("undo", json.loads(done.stdout)["progressId"], "--db", target, "--json")

    assert undone.returncode == 0, undone.stdout + undone.stderr
    answer = json.loads(undone.stdout)
    assert answer["success"] is True and answer["status"] == "completed"
    assert answer["warnings"] == []
    assert contents(target) == before


def test_undo_of_a_partial_restore_with_the_job_runner(make_db, engine_kind: str, tmp_path: Path) -> None:
    target = make_db(engine_kind)
    build_demo(target, 800)
    before = contents(target)
    edited = edited_users(target, tmp_path)
    runner = new_runner(load_settings(DATABASE_URL=target))
    try:
        job = runner.run(runner.create_restore(edited, {"snapshot": True}).id)
        assert job.status == "completed", job.error
        undo = runner.run(runner.create_undo(job.id).id)
    finally:
        runner.close()
        runner.store.close()

    assert undo.status == "completed", undo.error
    assert contents(target) == before


def test_a_stopped_replace_resumes_without_emptying_again(make_db, engine_kind: str, tmp_path: Path) -> None:
    target = make_db(engine_kind)
    build_demo(target, 2000)
    before = contents(target)
    backup = tmp_path / "all.json.gz"
    rowvault.backup(target, backup)
    change_the_database(target)
    done: dict[str, int] = {}
    batches = iter(range(9))

    with pytest.raises(RestoreAborted):
        rowvault.restore(
            target,
            backup,
            mode="replace",
            confirm_replace=True,
            batch_size=200,
            should_stop=lambda: next(batches, None) is None,
            on_checkpoint=done.__setitem__,
        )
    assert 0 < sum(done.values()) < 2000
    last = next(reversed(done))  # the checkpoint lags a batch, as after a crash
    done[last] = max(0, done[last] - 200)
    result = rowvault.restore(target, backup, mode="replace", confirm_replace=True, resume=Resume(done))

    assert result.success, result.errors[:3]
    assert contents(target) == before
