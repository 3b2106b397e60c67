"""Known gaps around the safety snapshot, kept as strict xfails until they are fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

import rowvault
from rowvault.demo import build_demo

from .backupfiles import read_backup, write_backup
from .dbdump import dump


@pytest.mark.xfail(
    strict=True,
    reason="an upsert leaves a held-back foreign key (a self-reference, a cycle) alone when the "
    "backup's value is NULL: restore.py/loader.py write held-back values only where they are "
    "not NULL (undo works around it by emptying them first)",
)
def test_an_upsert_puts_a_null_self_reference_back(make_db, tmp_path: Path) -> None:
    target = make_db("sqlite")
    build_demo(target, 300)
    rowvault.backup(target, tmp_path / "now.json")
    meta, tables = read_backup(tmp_path / "now.json")
    child = next(c for c in tables["categories"] if c["parent_id"] is not None)
    edited = {"categories": [{**child, "parent_id": None}]}
    described = {"categories": meta["tables"]["categories"]}
    rowvault.restore(target, write_backup(tmp_path / "edited.json", {**meta, "tables": described}, edited))
    rows = {r[0]: r for r in dump(target)["categories"]}
    assert rows[child["id"]][1] is None
