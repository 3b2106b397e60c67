"""Backups that do not look like rowvault's own still restore: tables in any order, names
written by camelCase ORMs, pretty-printed JSON without metadata, gzip or not."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import rowvault
from rowvault.demo import build_demo
from rowvault.demo import metadata as demo_metadata

from .backupfiles import read_backup, write_backup
from .dbdump import dump

JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}


def camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def same(a: str, b: str) -> bool:
    return dump(a, json_columns=JSON_COLUMNS) == dump(b, json_columns=JSON_COLUMNS)


def test_a_file_with_tables_in_reverse_order_restores(make_db, engine_kind: str, tmp_path: Path) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, 1500)
    rowvault.backup(source, tmp_path / "b.json")
    metadata, tables = read_backup(tmp_path / "b.json")
    reversed_tables = dict(reversed(list(tables.items())))
    path = write_backup(tmp_path / "reversed.json.gz", metadata, reversed_tables)

    result = rowvault.restore(target, path)

    assert result.success, result.errors[:5]
    assert same(target, source)


def test_a_camel_case_backup_restores_into_snake_case_tables(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, 1500)
    demo_metadata.create_all(_engine(target))  # the application's own (snake_case) schema
    rowvault.backup(source, tmp_path / "b.json")
    _, tables = read_backup(tmp_path / "b.json")
    camel_tables = {
        camel(name): [{camel(k): v for k, v in r.items()} for r in records]
        for name, records in tables.items()
    }
    path = tmp_path / "camel.json"  # the original feature's shape: no rowvault metadata
    path.write_text(json.dumps({"metadata": {"version": "1.0"}, **camel_tables}, indent=2))

    result = rowvault.restore(target, path)

    assert result.success, result.errors[:5]
    assert result.tables["businessProducts"].target == "business_products"
    assert same(target, source)


def test_an_old_style_gzip_file_without_metadata_restores(make_db, tmp_path: Path) -> None:
    target = make_db("sqlite")
    demo_metadata.create_all(_engine(target))
    users = [
        {
            "id": 1,
            "email": "a@example.com",
            "name": "Ada",
            "role": "owner",
            "isDemo": False,
            "createdAt": "2024-05-01T10:00:00.000Z",
            "settings": {"theme": "dark"},
        },
        {
            "id": 2,
            "email": "b@example.com",
            "name": "Bo",
            "role": "staff",
            "isDemo": True,
            "createdAt": "2024-05-02T10:00:00.000Z",
            "settings": None,
        },
    ]
    businesses = [
        {
            "id": 7,
            "ownerId": 1,
            "name": "Café",
            "slug": "cafe",
            "isDemo": False,
            "createdAt": "2024-05-03T10:00:00Z",
            "updatedAt": "2024-05-03T10:00:00Z",
        }
    ]
    path = tmp_path / "old.json.gz"
    document: dict[str, Any] = {"businesses": businesses, "users": users}
    path.write_bytes(gzip.compress(json.dumps(document).encode()))

    result = rowvault.restore(target, path)

    assert result.success, result.errors
    rows = dump(target)
    assert [r[:3] for r in rows["users"]] == [
        (1, "a@example.com", "Ada"),
        (2, "b@example.com", "Bo"),
    ]
    assert rows["businesses"][0][:3] == (7, 1, "Café")


def _engine(url: str) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(url)
