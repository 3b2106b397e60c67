"""rowvault's own files are one JSON document with one record per line, plain or gzip; any
other valid JSON layout (pretty-printed, wrapped in backupData, tables in any order) reads the
same records back."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from rowvault.errors import BackupFileError
from rowvault.file.reader import BackupFile
from rowvault.file.writer import BackupWriter

USERS = [
    {"id": 1, "email": "a@example.com", "bio": "line one\nline two"},
    {"id": 2, "email": "b@example.com", "bio": None},
    {"id": 3, "email": "ç@example.com", "bio": "]"},
]
POSTS = [{"id": 10, "user_id": 1, "title": "{not a record"}]
METADATA: dict[str, Any] = {
    "format": "rowvault",
    "version": 1,
    "dialect": "sqlite",
    "tables": {"users": {"count": 3}, "posts": {"count": 1}, "tags": {"count": 0}},
}


def write_lines(
    dest: Path | io.BytesIO, tables: dict[str, list[dict[str, Any]]], threaded: bool = False
) -> None:
    """Write with BackupWriter, users in two batches to cover the batch seam."""
    writer = BackupWriter(dest, threaded=threaded)
    writer.write_metadata(METADATA)
    for name, records in tables.items():
        writer.begin_table(name)
        encoded = [orjson.dumps(r) for r in records]
        writer.write_records(encoded[:2])
        writer.write_records(encoded[2:])
        writer.end_table()
    writer.close()


def read_all(file: BackupFile, layout: Any) -> dict[str, list[Any]]:
    tables: dict[str, list[Any]] = {}
    with file.sections(layout) as sections:
        for section in sections:
            parse = section.parse or (lambda item: item)
            tables[section.name] = [parse(item) for item in section.items]
    return tables


TABLES = {"users": USERS, "posts": POSTS, "tags": []}


@pytest.mark.parametrize("threaded", [False, True], ids=["zlib", "gzip-thread"])
@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_a_written_file_is_one_json_document(tmp_path: Path, name: str, threaded: bool) -> None:
    path = tmp_path / name
    write_lines(path, TABLES, threaded)

    data = path.read_bytes()
    if name.endswith(".gz"):
        assert data[:2] == b"\x1f\x8b", "a .gz name writes gzip"
        data = gzip.decompress(data)

    assert json.loads(data) == {"metadata": METADATA, **TABLES}
    assert list(tmp_path.iterdir()) == [path], "no .part file is left beside it"


def test_a_written_file_holds_one_record_per_line(tmp_path: Path) -> None:
    path = tmp_path / "backup.json"
    write_lines(path, TABLES)

    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line.rstrip(",")) for line in lines if line.startswith('{"id"')]

    assert records == USERS + POSTS
    assert lines[0].startswith('{"metadata":')


@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_scan_reports_the_line_layout_counts_and_metadata(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_lines(path, TABLES)

    summary = BackupFile(path).scan()

    assert summary.layout == "lines"
    assert summary.compressed == name.endswith(".gz")
    assert summary.metadata == METADATA
    assert {name: t.count for name, t in summary.tables.items()} == {
        "users": 3,
        "posts": 1,
        "tags": 0,
    }
    assert summary.total == 4
    assert summary.source_dialect == "sqlite"


def test_sections_stream_the_records_back_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "backup.json.gz"
    write_lines(path, TABLES)
    file = BackupFile(path)

    tables = read_all(file, file.scan().layout)

    assert list(tables) == ["users", "posts", "tags"]
    assert tables == TABLES


def test_a_stream_is_written_and_read_like_a_file() -> None:
    buffer = io.BytesIO()
    write_lines(buffer, TABLES)
    file = BackupFile(io.BytesIO(buffer.getvalue()))

    summary = file.scan()

    assert summary.layout == "lines"
    assert read_all(file, summary.layout) == TABLES


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_pretty_printed_file_is_read_as_json_with_the_same_records(tmp_path: Path, wrapped: bool) -> None:
    document: dict[str, Any] = {"metadata": METADATA, **TABLES}
    if wrapped:
        document = {"backupData": document}
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    file = BackupFile(path)

    summary = file.scan()

    assert summary.layout == "json"
    assert summary.metadata == METADATA
    assert {name: t.count for name, t in summary.tables.items()} == {
        "users": 3,
        "posts": 1,
        "tags": 0,
    }
    assert summary.columns("users") == ["bio", "email", "id"]
    assert read_all(file, summary.layout) == TABLES


def test_a_json_file_with_children_first_and_metadata_last_is_scanned(tmp_path: Path) -> None:
    document = {"posts": POSTS, "users": USERS, "metadata": METADATA}
    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress(json.dumps(document).encode()))
    file = BackupFile(path)

    summary = file.scan()

    assert summary.compressed
    assert list(summary.tables) == ["posts", "users"]
    assert summary.metadata == METADATA
    assert read_all(file, summary.layout) == {"posts": POSTS, "users": USERS}


def test_a_line_file_with_tables_in_any_order_is_scanned(tmp_path: Path) -> None:
    path = tmp_path / "backup.json"
    write_lines(path, {"tags": [], "posts": POSTS, "users": USERS})
    file = BackupFile(path)

    summary = file.scan()

    assert list(summary.tables) == ["tags", "posts", "users"]
    assert read_all(file, summary.layout) == {"tags": [], "posts": POSTS, "users": USERS}


def test_a_count_that_disagrees_with_the_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edited.json"
    write_lines(path, {"users": USERS[:2], "posts": POSTS})

    with pytest.raises(BackupFileError, match="the metadata says 3 records but the file holds 2"):
        BackupFile(path).scan()


@pytest.mark.parametrize("threaded", [False, True], ids=["zlib", "gzip-thread"])
@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_abort_leaves_nothing_at_the_destination(tmp_path: Path, name: str, threaded: bool) -> None:
    path = tmp_path / name
    writer = BackupWriter(path, threaded=threaded)
    writer.write_metadata(METADATA)
    writer.begin_table("users")
    writer.write_records([orjson.dumps(r) for r in USERS])

    writer.abort()

    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_both_compressions_hold_the_same_bytes(tmp_path: Path) -> None:
    """The compression on its own thread (a database's backup) and on the caller's (small
    files) differ in speed and size only: the same calls give the same JSON, past the step at
    which the writer hands bytes to the compression."""
    many = {"users": [{"id": i, "bio": "x" * (i % 700)} for i in range(8000)], "tags": []}
    write_lines(tmp_path / "zlib.json.gz", many)
    write_lines(tmp_path / "thread.json.gz", many, threaded=True)
    write_lines(tmp_path / "plain.json", many)

    plain = (tmp_path / "plain.json").read_bytes()
    assert len(plain) > 2 << 20
    assert gzip.decompress((tmp_path / "zlib.json.gz").read_bytes()) == plain
    assert gzip.decompress((tmp_path / "thread.json.gz").read_bytes()) == plain


def test_abort_keeps_an_older_backup_at_the_destination(tmp_path: Path) -> None:
    path = tmp_path / "backup.json"
    path.write_bytes(b"previous backup")
    writer = BackupWriter(path)
    writer.write_metadata(METADATA)

    writer.abort()

    assert path.read_bytes() == b"previous backup"


def _three_tables(tmp_path: Path) -> Path:
    """Three tables of 20,000 records: each spans blocks, and blocks hold two tables' ends."""
    writer = BackupWriter(tmp_path / "three.json.gz")
    writer.write_metadata({"format": "rowvault", "version": 1, "tables": {}})
    for name in ("a", "b", "c"):
        writer.begin_table(name)
        writer.write_records(
            [orjson.dumps({"id": i, "text": f"{name} record {i:08d}"}) for i in range(20_000)]
        )
        writer.end_table()
    writer.close()
    return tmp_path / "three.json.gz"


def test_tables_that_span_blocks_are_counted_to_the_record(tmp_path: Path) -> None:
    summary = BackupFile(_three_tables(tmp_path)).scan()
    assert {name: t.count for name, t in summary.tables.items()} == {"a": 20_000, "b": 20_000, "c": 20_000}


@pytest.mark.parametrize("damage", [b"garbage", b"]", b""])
def test_a_damaged_line_inside_a_block_is_named(tmp_path: Path, damage: bytes) -> None:
    path = _three_tables(tmp_path)
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"id":12345,"text":"b'))
    lines[at] = damage
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(BackupFileError) as raised:
        BackupFile(path).scan()
    if damage == b"]":  # table b ends early: the next line is neither a table nor the end
        assert raised.value.line == at + 2 and "expected a table or the end" in str(raised.value)
    else:
        assert raised.value.line == at + 1 and raised.value.table == "b"
