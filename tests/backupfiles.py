"""Read and rewrite small backup files in tests (whole files in memory: tests only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rowvault.file.reader import BackupFile
from rowvault.file.writer import BackupWriter

Tables = dict[str, list[dict[str, Any]]]


def read_backup(path: Path) -> tuple[dict[str, Any], Tables]:
    file = BackupFile(path)
    summary = file.scan()
    tables: Tables = {}
    with file.sections(summary.layout) as sections:
        for section in sections:
            parse = section.parse or (lambda x: x)
            tables[section.name] = [parse(item) for item in section.items]
    return summary.metadata or {}, tables


def write_backup(path: Path, metadata: dict[str, Any] | None, tables: Tables) -> Path:
    """rowvault's line layout; counts in the metadata follow the records given."""
    writer = BackupWriter(path)
    meta = dict(metadata or {"format": "rowvault", "version": 1})
    described = dict(meta.get("tables") or {})
    meta["tables"] = {
        name: {**described.get(name, {}), "count": len(records)} for name, records in tables.items()
    }
    writer.write_metadata(meta)
    for name, records in tables.items():
        writer.begin_table(name)
        writer.write_records([orjson.dumps(r) for r in records])
        writer.end_table()
    writer.close()
    return path


def write_json(path: Path, document: Any) -> Path:
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return path
