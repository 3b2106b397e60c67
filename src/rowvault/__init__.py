"""rowvault: backup and restore for the data of an application's SQL database.

import rowvault
rowvault.backup("app.db", "backup.json.gz")
result = rowvault.restore("postgresql://localhost/app", "backup.json.gz")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .backup import backup
from .errors import (
    BackupAborted,
    BackupFileError,
    ConfirmationRequired,
    ConnectionLost,
    DatabaseError,
    DiskFull,
    OptionError,
    RestoreAborted,
    RowvaultError,
    ValidationError,
)
from .options import BackupOptions, RestoreOptions
from .progress import Progress
from .restore import restore, validate
from .results import BackupResult, RestoreResult, TableResult

__all__ = [
    "BackupAborted",
    "BackupFileError",
    "BackupOptions",
    "BackupResult",
    "ConfirmationRequired",
    "ConnectionLost",
    "DatabaseError",
    "DiskFull",
    "OptionError",
    "Progress",
    "RestoreAborted",
    "RestoreOptions",
    "RestoreResult",
    "RowvaultError",
    "TableResult",
    "ValidationError",
    "__version__",
    "backup",
    "restore",
    "validate",
]
