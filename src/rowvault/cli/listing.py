"""What `rowvault validate FILE` lists, as `pg_restore --list` does: the file's format and
version, generator, source dialect, creation time and options (from its metadata), then
each table with its record count and columns. A file without rowvault's metadata (another
tool's JSON) says which of those it cannot tell."""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any

from rich.text import Text

from ..file.reader import FileSummary

UNKNOWN = "unknown"
LABEL_WIDTH = len("source dialect") + 1


def file_listing(summary: FileSummary) -> dict[str, Any]:
    """The listing as one JSON-able object (what `--json` prints)."""
    meta = summary.metadata if isinstance(summary.metadata, dict) else {}
    tables = meta.get("tables")
    described: dict[str, Any] = tables if isinstance(tables, dict) else {}
    return {
        "file": summary.name,
        "layout": "lines" if summary.layout == "lines" else "json",
        "compressed": summary.compressed,
        "format": _text(meta.get("format")),
        "version": meta.get("version") if isinstance(meta.get("version"), int) else None,
        "generator": _text(meta.get("generator")),
        "sourceDialect": summary.source_dialect,
        "createdAt": _text(meta.get("createdAt")),
        "options": meta.get("options") if isinstance(meta.get("options"), dict) else None,
        "records": summary.total,
        "tables": [
            {"name": t.name, "records": t.count, "columns": _columns(summary, t.name, described.get(t.name))}
            for t in summary.tables.values()
        ],
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _columns(summary: FileSummary, table: str, described: Any) -> list[dict[str, Any]]:
    """The table's columns from its description in the metadata, else the record keys the
    scan saw (types unknown)."""
    columns = described.get("columns") if isinstance(described, dict) else None
    if isinstance(columns, list) and columns:
        return [
            {"name": c.get("name"), "type": c.get("sqlType") or c.get("type")}
            for c in columns
            if isinstance(c, dict) and isinstance(c.get("name"), str)
        ]
    keys = summary.tables[table].keys or set()
    return [{"name": name, "type": None} for name in sorted(keys) if not name.startswith("_rowvault")]


def header_lines(listing: dict[str, Any], width: int) -> list[str]:
    """The file's facts, `label  value`, a long value wrapped under itself."""
    ours = listing["format"] == "rowvault"
    layout = "rowvault line layout" if listing["layout"] == "lines" else "JSON (not rowvault's line layout)"
    if ours:
        kind = f"a rowvault backup, format version {listing['version'] or UNKNOWN}"
    else:
        kind = "not rowvault's (the file has no rowvault metadata)"
    facts = [
        ("format", kind),
        ("layout", layout + (", gzip" if listing["compressed"] else "")),
        ("generator", listing["generator"] or UNKNOWN),
        ("source dialect", listing["sourceDialect"] or UNKNOWN),
        ("created at", _when(listing["createdAt"])),
        ("options", _options(listing["options"])),
        ("records", f"{listing['records']:,} in {len(listing['tables'])} tables"),
    ]
    lines = []
    for label, value in facts:
        rows = textwrap.wrap(value, max(20, width - LABEL_WIDTH - 3), break_on_hyphens=False)
        lines.append(f"  {label:<{LABEL_WIDTH}} {rows[0]}")
        lines.extend(" " * (LABEL_WIDTH + 3) + row for row in rows[1:])
    return lines


def _when(value: str | None) -> str:
    if value is None:
        return UNKNOWN
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    zone = "UTC" if moment.utcoffset() is not None and not moment.utcoffset() else moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}".rstrip()


def _options(options: dict[str, Any] | None) -> str:
    if options is None:
        return UNKNOWN
    words = []
    for key, value in options.items():
        if key == "includeDemoData":
            words.append("demo rows included" if value else "demo rows left out")
        elif key == "limits":
            limits = value if isinstance(value, dict) else {}
            shown = ", ".join(f"{t}={n}" for t, n in limits.items())
            words.append(f"newest rows only: {shown}" if shown else "no table limits")
        else:
            words.append(f"{key}={value}")
    return "; ".join(words) or "none"


def table_lines(listing: dict[str, Any], width: int) -> list[Text]:
    """Each table's name, record count and columns; the columns wrapped to `width`, between
    entries (a column's name and type stay on one line)."""
    tables = listing["tables"]
    if not tables:
        return [Text("  (no tables)")]
    name_width = min(max(len("table"), *(len(t["name"]) for t in tables)), max(12, width // 4))
    count_width = max(len("records"), *(len(f"{t['records']:,}") for t in tables))
    indent = 2 + name_width + 2 + count_width + 2
    if width - indent < 24:  # too narrow beside the counts: the columns go under each table
        indent = 6
    head = Text(f"  {'table':<{name_width}}  {'records':>{count_width}}  columns", style="bold")
    lines = [head]
    for t in tables:
        name = t["name"] if len(t["name"]) <= name_width else t["name"][: name_width - 1] + "…"
        first = f"  {name:<{name_width}}  {t['records']:>{count_width},}  "
        entries = [_entry(c) for c in t["columns"]] or ["(no columns known)"]
        packed = _pack(entries, width - indent)
        if indent == 6:
            lines.append(Text(first.rstrip()))
            lines.extend(Text(" " * indent + row) for row in packed)
            continue
        lines.append(Text(first + packed[0]))
        lines.extend(Text(" " * indent + row) for row in packed[1:])
    return lines


def _entry(column: dict[str, Any]) -> str:
    return f"{column['name']} {column['type']}" if column.get("type") else str(column["name"])


def _pack(entries: list[str], room: int) -> list[str]:
    """Entries joined by ", " into rows of at most `room` characters, greedily."""
    room = max(room, 1)
    rows: list[str] = []
    row = ""
    for i, entry in enumerate(entries):
        piece = entry + ("," if i < len(entries) - 1 else "")
        if row and len(row) + 1 + len(piece) > room:
            rows.append(row)
            row = ""
        while len(piece) > room:  # one entry wider than the room: folded
            rows.append(piece[:room])
            piece = piece[room:]
        row = f"{row} {piece}" if row else piece
    rows.append(row)
    return rows
