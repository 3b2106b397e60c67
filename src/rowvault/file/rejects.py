"""The rejects file: every record a restore could not write, in the backup format, with the
reason beside each (`"_rowvault_error"`, which restores ignore), so the records can be fixed
and restored on their own.
"""

from __future__ import annotations

import json
import tempfile
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from ..progress import utc_now
from .format import FORMAT, FORMAT_VERSION, REJECT_REASON_KEY
from .writer import BackupWriter

RAW_KEY = "_rowvault_raw"
"""Holds the text of a record that was not valid JSON."""


def default_rejects_path(source: str, job_id: str | None = None) -> Path:
    """`backup.json.gz` -> `backup.rejects.json` beside it; with a job id,
    `backup.rejects-1a2b3c4d.json`, so the next run of the same file keeps this one's."""
    path = Path(source)
    name = path.name
    for suffix in (".gz", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    tag = f"-{job_id[:8]}" if job_id else ""
    return path.with_name(f"{name}.rejects{tag}.json")


def _line(entry: dict[str, Any], reason: str) -> bytes:
    """The entry as one line: by orjson, else (an integer past 64 bits, nesting past 255
    levels) by the json module, else - nested past even that - the reason alone."""
    try:
        return orjson.dumps(entry, default=str)
    except TypeError:
        pass
    try:
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":")).encode()
    except (RecursionError, ValueError):
        kept = f"{reason} (the record is nested too deeply to be kept in this file)"
        return orjson.dumps({REJECT_REASON_KEY: kept})


class Rejects:
    """Collects rejected records per table in temporary files; `close()` writes the file."""

    def __init__(self, path: Path | None, source_metadata: dict[str, Any] | None) -> None:
        self.path = path
        self.count = 0
        self._source_tables = (source_metadata or {}).get("tables") or {}
        self._dialect = (source_metadata or {}).get("dialect")
        self._spools: dict[str, tuple[IO[bytes], int]] = {}

    def add(self, table: str, record: Any, reason: str) -> None:
        if isinstance(record, dict):
            entry = {**record, REJECT_REASON_KEY: reason}
        else:
            raw = record.decode("utf-8", "replace") if isinstance(record, bytes) else str(record)
            entry = {RAW_KEY: raw, REJECT_REASON_KEY: reason}
        spool, n = self._spools.get(table) or (tempfile.TemporaryFile(), 0)
        spool.write(_line(entry, reason) + b"\n")
        self._spools[table] = (spool, n + 1)
        self.count += 1

    def close(self) -> Path | None:
        """Write the rejects file if anything was rejected; return its path."""
        try:
            if not self.count or self.path is None:
                return None
            tables = {}
            for table, (_, n) in self._spools.items():
                described = self._source_tables.get(table)
                info = dict(described) if isinstance(described, dict) else {}
                tables[table] = {**info, "count": n}
            metadata = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "createdAt": utc_now().isoformat(),
                "dialect": self._dialect,
                "rejects": True,
                "tables": tables,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = BackupWriter(self.path)
            try:
                writer.write_metadata(metadata)
                for table, (spool, _) in self._spools.items():
                    spool.seek(0)
                    writer.begin_table(table)
                    while chunk := list(islice(spool, 10_000)):
                        writer.write_records([line.rstrip(b"\n") for line in chunk])
                    writer.end_table()
                writer.close()
            except BaseException:
                writer.abort()
                raise
            return self.path
        finally:
            for spool, _ in self._spools.values():
                spool.close()
            self._spools.clear()
