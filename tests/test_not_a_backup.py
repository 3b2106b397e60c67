"""A file that is not a backup is named for what it is, in plain words, without parser jargon
or raw bytes."""

from __future__ import annotations

import gzip
import io
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("backup.json", "{}")
    return out.getvalue()


def sqlite_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    return path.read_bytes()


CASES = {
    "zip.json.gz": (lambda _: zip_bytes(), "a ZIP archive"),
    "image.json": (lambda _: b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    "app.json": (sqlite_bytes, "a SQLite database"),
    "dump.json": (lambda _: b"PGDMP\x01\x0e\x00" + bytes(64), "a pg_dump archive"),
    "image.json.gz": (
        lambda _: gzip.compress(b"\x89PNG\r\n\x1a\n" + bytes(64)),
        "gzip data holding a PNG image",
    ),
    "notes.json": (lambda _: b"these are my notes\n", "text that is not JSON"),
    "list.json": (lambda _: b"[1, 2, 3]\n", "a JSON array"),
    "utf16.json": (lambda _: '{"users": []}'.encode("utf-16"), "UTF-16 text"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_file_that_is_not_a_backup_says_what_it_is(name: str, tmp_path: Path) -> None:
    make, kind = CASES[name]
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "rowvault.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = done.stdout + done.stderr
    assert done.returncode == 1
    assert "this is not a rowvault or JSON backup" in message and kind in message, message
    assert "\\x" not in message and "lexical error" not in message and "Traceback" not in message
    assert len(message.strip().splitlines()) == 1
