"""A backup with about 1% bad records: exactly those (and the children of failed parents) are
reported and rejected, every other record is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo
from rowvault.demo import metadata as demo_metadata
from rowvault.file.format import REJECT_REASON_KEY

from .backupfiles import Tables, read_backup, write_backup
from .dbdump import counts

RECORDS = 2000


def spoil(tables: Tables) -> set[str]:
    """Break about 1% of the records in ways a real file goes wrong; return their ids."""
    bad: set[str] = set()
    products = tables["business_products"]
    for i, record in enumerate(products):
        kind = i % 200
        if kind == 5:
            record["price"] = "abc"  # wrong type
        elif kind == 17:
            record["stock"] = "many"  # wrong type
        elif kind == 29:
            record["business_id"] = 999_999  # missing parent
        elif kind == 41:
            record["sku"] = products[0]["sku"]  # unique key taken
        elif kind == 53:
            record["name"] = None  # NOT NULL
        else:
            continue
        bad.add(f"business_products:{record['id']}")
    for i, record in enumerate(tables["audit_logs"]):
        if i % 100 == 7:
            record["created_at"] = "yesterday"  # not a datetime
        elif i % 100 == 57:
            record["user_id"] = 999_999  # missing parent
        else:
            continue
        bad.add(f"audit_logs:{record['id']}")
    user = tables["users"][3]
    user["email"] = tables["users"][0]["email"]  # unique key taken: its children must be skipped
    bad.add(f"users:{user['id']}")
    return bad


def record_id(table: str, record: dict[str, Any]) -> str:
    key = [c.name for c in demo_metadata.tables[table].primary_key.columns]
    return f"{table}:{','.join(str(record[k]) for k in key)}"


def with_descendants(tables: Tables, bad: set[str]) -> set[str]:
    """Add every record whose parent (or grandparent...) is bad."""
    failed = set(bad)
    links = [
        (table.name, fk.parent.name, fk.column.table.name)
        for table in demo_metadata.tables.values()
        for fk in table.foreign_keys
    ]
    while True:
        added = False
        for child, column, parent in links:
            for record in tables.get(child, []):
                rid = record_id(child, record)
                if rid in failed or record.get(column) is None:
                    continue
                if f"{parent}:{record[column]}" in failed:
                    failed.add(rid)
                    added = True
        if not added:
            return failed


def test_bad_records_are_reported_and_rejected_and_the_rest_written(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, RECORDS)
    good = tmp_path / "good.json"
    rowvault.backup(source, good)
    metadata, tables = read_backup(good)
    bad = spoil(tables)
    expected = with_descendants(tables, bad)
    spoiled = write_backup(tmp_path / "spoiled.json", metadata, tables)
    assert 0.009 * RECORDS <= len(bad) <= 0.02 * RECORDS

    result = rowvault.restore(target, spoiled, batch_size=100)

    reported = {message.split(" - ")[0] for message in result.errors}
    assert reported == expected
    assert result.error_count == len(expected)
    assert result.status == "completed" and not result.success
    written = counts(target)
    for name, records in tables.items():
        failed = sum(1 for r in records if record_id(name, r) in expected)
        assert written[name] == len(records) - failed, name
        assert result.tables[name].failed == failed, name
    messages = "\n".join(result.errors)
    assert "column 'price': expected a decimal number, got 'abc'" in messages
    assert "column 'created_at': expected an ISO 8601 datetime, got 'yesterday'" in messages
    assert "column 'name' must not be empty" in messages
    user_id = tables["users"][3]["id"]
    assert f"skipped: parent users:{user_id} failed" in messages

    assert result.rejects_path is not None
    _, rejected = read_backup(result.rejects_path)
    rejected_ids = {
        record_id(t, {k: v for k, v in r.items() if k != REJECT_REASON_KEY})
        for t, rs in rejected.items()
        for r in rs
    }
    assert rejected_ids == expected
    assert all(r[REJECT_REASON_KEY] for rs in rejected.values() for r in rs)


def test_one_bad_record_in_a_big_batch_does_not_stop_the_batch(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    target = make_db(engine_kind)
    engine = sa.create_engine(target)
    table = sa.Table(
        "things",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(20), nullable=False, unique=True),
    )
    table.create(engine)
    engine.dispose()
    records = [{"id": i, "code": f"c{i}"} for i in range(1, 5001)]
    records[2500]["code"] = "c1"  # duplicate of the first
    path = write_backup(tmp_path / "things.json", None, {"things": records})

    result = rowvault.restore(target, path, batch_size=5000)

    assert [m.split(" - ")[0] for m in result.errors] == ["things:2501"]
    assert counts(target)["things"] == 4999
