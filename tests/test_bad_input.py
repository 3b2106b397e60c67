"""Files that are not backups are refused with a message naming the problem, before anything
is written; bad records inside a good file are reported one by one and everything else is
written."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

import rowvault
from rowvault import BackupFileError, ValidationError
from rowvault.demo import build_demo

from .backupfiles import write_json
from .dbdump import dump


@pytest.fixture
def target(make_db, tmp_path: Path) -> str:
    url = make_db("sqlite")
    build_demo(url, 300)
    return url


@pytest.fixture
def good_backup(target: str, tmp_path: Path) -> Path:
    path = tmp_path / "good.json"
    rowvault.backup(target, path)
    return path


def refused(target: str, path: Path, error: type[Exception], *words: str) -> None:
    before = dump(target)
    with pytest.raises(error) as caught:
        rowvault.restore(target, path)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert dump(target) == before, "a refused file must leave the database untouched"


def test_a_file_that_is_not_json_is_refused(target: str, tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("these are not the records you are looking for\n")
    refused(
        target, path, BackupFileError, "notes.json", "not a rowvault or JSON backup", "text that is not JSON"
    )


def test_a_truncated_file_is_refused(target: str, good_backup: Path, tmp_path: Path) -> None:
    data = good_backup.read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(data[: len(data) // 2])
    refused(target, cut, BackupFileError, "cut.json", "truncated")


def test_a_truncated_gzip_file_is_refused(target: str, good_backup: Path, tmp_path: Path) -> None:
    data = gzip.compress(good_backup.read_bytes())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    refused(target, cut, BackupFileError, "cut.json.gz", "truncated")


def test_a_truncated_pretty_printed_file_is_refused(target: str, tmp_path: Path) -> None:
    path = tmp_path / "pretty.json"
    text = '{\n  "users": [\n    {"id": 1, "email": "a@example.com"},\n    {"id": 2'
    path.write_text(text)
    refused(target, path, BackupFileError, "pretty.json", "truncated")


def test_a_top_level_array_is_refused(target: str, tmp_path: Path) -> None:
    path = write_json(tmp_path / "array.json", [{"id": 1}, {"id": 2}])
    refused(target, path, BackupFileError, "array.json", "not a rowvault or JSON backup", "a JSON array")


def test_a_table_that_is_not_an_array_is_refused(target: str, tmp_path: Path) -> None:
    path = write_json(tmp_path / "object.json", {"users": {"id": 1}})
    refused(target, path, BackupFileError, "'users'", "not an array of records")


def test_a_record_that_is_not_an_object_is_refused(target: str, tmp_path: Path) -> None:
    path = write_json(tmp_path / "numbers.json", {"users": [1, 2, 3]})
    refused(target, path, BackupFileError, "'users'", "record #1 is a number")


def test_an_unknown_table_is_refused_by_name(target: str, tmp_path: Path) -> None:
    path = write_json(tmp_path / "unknown.json", {"invoices": [{"id": 1, "total": "9.50"}]})
    refused(target, path, ValidationError, "'invoices'", "does not exist", "--skip-unknown")


def test_an_unknown_column_is_refused_by_name(target: str, tmp_path: Path) -> None:
    path = write_json(tmp_path / "column.json", {"users": [{"id": 1, "shoe_size": 44}]})
    refused(target, path, ValidationError, "'users'", "'shoe_size'")


def test_a_gz_file_that_is_not_gzip_is_refused(target: str, tmp_path: Path) -> None:
    path = tmp_path / "backup.json.gz"
    path.write_bytes(b"PK\x03\x04 this is a zip file, not gzip" * 10)
    refused(target, path, BackupFileError, "backup.json.gz", "not a rowvault or JSON backup", "a ZIP archive")


def test_corrupt_gzip_data_is_refused(target: str, good_backup: Path, tmp_path: Path) -> None:
    data = bytearray(gzip.compress(good_backup.read_bytes()))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    path = tmp_path / "corrupt.json.gz"
    path.write_bytes(bytes(data))
    refused(target, path, BackupFileError, "corrupt.json.gz")


def test_counts_that_disagree_with_the_metadata_are_refused(
    target: str, good_backup: Path, tmp_path: Path
) -> None:
    lines = good_backup.read_bytes().split(b"\n")
    # drop one record line of the first non-empty table
    first = next(i for i, line in enumerate(lines) if line.startswith(b"{") and i > 0)
    lines[first + 1 : first + 2] = []
    path = tmp_path / "edited.json"
    path.write_bytes(b"\n".join(lines))
    refused(target, path, BackupFileError, "edited.json", "metadata says")


def test_an_empty_file_is_refused(target: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    refused(target, path, BackupFileError, "empty")


def test_a_missing_file_is_refused(target: str, tmp_path: Path) -> None:
    refused(target, tmp_path / "nowhere.json", BackupFileError, "no such file")


def test_skip_unknown_restores_the_rest_and_reports_what_it_left_out(target: str, tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "extra.json",
        {
            "invoices": [{"id": 1}],
            "daily_metrics": [{"day": "2030-01-01", "metric": "x", "value": 1.5, "mood": "ok"}],
        },
    )
    result = rowvault.restore(target, path, skip_unknown=True)
    assert result.skipped_tables == ["invoices"]
    assert result.skipped_columns == {"daily_metrics": ["mood"]}
    assert result.tables["daily_metrics"].created == 1
