"""What a restore or a backup did, table by table, in the shape the API and `--json` give."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_ERRORS_KEPT = 1000


@dataclass
class TableResult:
    table: str
    """The table's name in the backup (the name users and the progress record see)."""
    target: str
    total: int = 0
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    created_table: bool = False
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "total": self.total,
            "errors": list(self.errors),
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "target": self.target,
            "createdTable": self.created_table,
        }


@dataclass
class RestoreResult:
    source: str
    database: str
    dry_run: bool = False
    tables: dict[str, TableResult] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    skipped_tables: list[str] = field(default_factory=list)
    skipped_columns: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rejects_path: Path | None = None
    seconds: float = 0.0
    status: str = "completed"
    retries: int = 0
    """Transient failures (lost connections, deadlocks) survived on a new connection."""

    @property
    def processed(self) -> int:
        return sum(t.processed for t in self.tables.values())

    @property
    def total(self) -> int:
        return sum(t.total for t in self.tables.values())

    @property
    def success(self) -> bool:
        return self.status == "completed" and self.error_count == 0

    def add_error(self, table: TableResult | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)
        if table is not None:
            table.failed += 1
            if len(table.errors) < MAX_ERRORS_KEPT:
                table.errors.append(message)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestoreResult:
        """Read back what `to_dict()` wrote (a job's stored result)."""
        result = cls(
            source=str(data.get("source", "")),
            database=str(data.get("database", "")),
            dry_run=bool(data.get("dryRun", False)),
            errors=list(data.get("errors") or []),
            error_count=int(data.get("errorCount") or 0),
            skipped_tables=list(data.get("skippedTables") or []),
            skipped_columns=dict(data.get("skippedColumns") or {}),
            warnings=list(data.get("warnings") or []),
            rejects_path=Path(data["rejectsFile"]) if data.get("rejectsFile") else None,
            seconds=float(data.get("seconds") or 0.0),
            status=str(data.get("status", "completed")),
            retries=int(data.get("retries") or 0),
        )
        for name, t in (data.get("results") or {}).items():
            result.tables[name] = TableResult(
                table=name,
                target=t.get("target", name),
                total=t.get("total", 0),
                processed=t.get("processed", 0),
                created=t.get("created", 0),
                updated=t.get("updated", 0),
                unchanged=t.get("unchanged", 0),
                failed=t.get("failed", 0),
                created_table=bool(t.get("createdTable")),
                errors=list(t.get("errors") or []),
            )
        return result

    def to_dict(self) -> dict[str, Any]:
        """The `wait=true` answer of DESIGN.md §3, plus rowvault's own fields."""
        return {
            "success": self.success,
            "processed": self.processed,
            "total": self.total,
            "results": {name: t.to_dict() for name, t in self.tables.items()},
            "errors": list(self.errors),
            "errorCount": self.error_count,
            "status": self.status,
            "dryRun": self.dry_run,
            "skippedTables": list(self.skipped_tables),
            "skippedColumns": {k: list(v) for k, v in self.skipped_columns.items()},
            "warnings": list(self.warnings),
            "rejectsFile": str(self.rejects_path) if self.rejects_path else None,
            "seconds": round(self.seconds, 3),
            "source": self.source,
            "database": self.database,
            "retries": self.retries,
        }


@dataclass
class BackupResult:
    path: str
    tables: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "tables": dict(self.tables),
            "total": self.total,
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 3),
        }
