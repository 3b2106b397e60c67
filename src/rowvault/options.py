"""The options of a restore and of a backup, as frozen dataclasses with checked values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from .errors import ConfirmationRequired, OptionError

Mode = Literal["upsert", "insert", "skip", "replace"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore. Every field has the default a user would expect."""

    mode: Mode = "upsert"
    batch_size: int | None = None
    """Records per batch; None sizes each batch to take about `target_batch_seconds`."""
    batch_delay_ms: int = 0
    dry_run: bool = False
    skip_unknown: bool = False
    confirm_replace: bool = False
    rejects_path: Path | None = None
    """Where failed records go; default: beside the backup, `<name>.rejects.json`."""
    target_batch_seconds: float = 0.2
    tables: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    retries: int = 5
    """Transient failures in a row (a lost connection, a deadlock) waited out on a new
    connection before the restore stops, resumable."""
    retry_wait_seconds: float = 0.5
    """The first wait before trying again; it doubles with each failure in a row (at most 8 s)."""
    columnar: bool = True
    """Move records as columns where the file and the table allow it (`rowvault.load`);
    False: every record through the row path (slower, the same database and result)."""
    jobs: int = 2
    """Connections that write a table's batches at once, committing in the file's order
    (`rowvault.load.lanes`), where the engine gains by it (PostgreSQL); 1: one connection."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionError(f"batch size must be at least 1, not {self.batch_size}")
        if self.batch_delay_ms < 0:
            raise OptionError(f"batch delay must not be negative, not {self.batch_delay_ms}")
        if not 1 <= self.jobs <= 16:
            raise OptionError(f"jobs must be from 1 to 16, not {self.jobs}")
        if self.retries < 0 or self.retry_wait_seconds < 0:
            raise OptionError("retries and the wait between them must not be negative")
        if self.mode == "replace" and not self.confirm_replace and not self.dry_run:
            raise ConfirmationRequired(
                "mode 'replace' empties every restored table first",
                "confirm_replace=True (--yes on the command line, confirmReplace=true over HTTP)",
            )


@dataclass(frozen=True)
class BackupOptions:
    tables: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    limits: Mapping[str, int] = field(default_factory=dict)
    """Keep only the N newest rows of these tables (newest by created/updated time, else key)."""
    include_demo_data: bool = True
    demo_column: str = "is_demo"
    compress: bool | None = None
    """None: gzip when the destination's name ends in .gz."""
    retries: int = 5
    """Lost connections in a row after which a backup to a file stops; each one starts the
    backup again, in a new snapshot."""
    retry_wait_seconds: float = 0.5

    def __post_init__(self) -> None:
        for table, n in self.limits.items():
            if not isinstance(n, int) or n < 0:
                raise OptionError(f"limit for table {table!r} must be a whole number >= 0")
