"""The library leaves its host alone: its garbage collector, and its current directory."""

from __future__ import annotations

import gc
import io
from pathlib import Path

import pytest

import rowvault
from rowvault.demo import build_demo

from .backupfiles import read_backup, write_backup


@pytest.fixture
def backup_file(tmp_path: Path) -> Path:
    build_demo(tmp_path / "source.db", 300)
    path = tmp_path / "backup.json.gz"
    rowvault.backup(tmp_path / "source.db", path)
    return path


def test_restore_and_backup_do_not_freeze_the_host_collector(backup_file: Path, tmp_path: Path) -> None:
    before = gc.get_freeze_count()
    seen: list[int] = []
    rowvault.restore(
        tmp_path / "target.db", backup_file, progress=lambda _: seen.append(gc.get_freeze_count())
    )
    rowvault.backup(
        tmp_path / "target.db", tmp_path / "again.json", progress=lambda _: seen.append(gc.get_freeze_count())
    )
    assert seen and set(seen) == {before}
    assert gc.get_freeze_count() == before


def test_a_restore_from_a_stream_writes_no_file_in_the_current_directory(
    backup_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata, tables = read_backup(backup_file)
    tables["categories"].append({"id": "not a number", "name": "bad"})
    damaged = write_backup(tmp_path / "damaged.json", metadata, tables)
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    result = rowvault.restore(tmp_path / "target.db", io.BytesIO(damaged.read_bytes()))
    assert result.error_count == 1
    assert list(here.iterdir()) == []
    assert result.rejects_path is not None and result.rejects_path.exists()
    assert result.rejects_path.parent != here
