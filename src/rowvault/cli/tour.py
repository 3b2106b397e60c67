"""What `rowvault demo` shows after building the demo database: a backup and a restore of
it into a fresh database, with the progress block and summaries a user will see."""

from __future__ import annotations

from pathlib import Path

from ..backup import backup
from ..database import is_url
from ..heap import frozen_heap
from ..restore import restore
from .display import backup_summary, plain, progress_bars, restore_summary


def tour(db: str) -> Path:
    """Back up `db` and restore the backup twice into a new database; returns the backup."""
    folder = Path(db).resolve().parent if not is_url(db) else Path.cwd()
    backup_file = folder / "demo-backup.json.gz"
    restored = folder / "demo-restored.db"
    restored.unlink(missing_ok=True)
    plain(f"\nbacking up {db} to {backup_file}")
    with progress_bars("backup") as bars, frozen_heap():
        assert bars is not None
        written = backup(db, backup_file, progress=bars)
    backup_summary(written)
    plain(f"\nrestoring {backup_file.name} into a new database, {restored}")
    with progress_bars("restore") as bars, frozen_heap():
        assert bars is not None
        result = restore(restored, backup_file, progress=bars)
    restore_summary(result)
    plain("\nagain, into the same database: every record is already there")
    with progress_bars("restore") as bars, frozen_heap():
        assert bars is not None
        again = restore(restored, backup_file, progress=bars)
    restore_summary(again)
    return backup_file
