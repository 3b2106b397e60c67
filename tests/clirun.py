"""The real `rowvault` CLI as a subprocess with a home of its own, for tests that kill, fill
or resume it: no ROWVAULT_*, RESTORE_* or DATABASE_URL of the test run leaks in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_env(home: Path) -> dict[str, str]:
    keep = {
        k: v for k, v in os.environ.items() if not k.startswith(("ROWVAULT_", "RESTORE_", "DATABASE_URL"))
    }
    return {**keep, "ROWVAULT_HOME": str(home)}


def rowvault_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rowvault.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=300,
    )
