"""The `rowvault` command: typer commands thin over the job runner and the engine.

app.py          the typer app, shared options, errors -> exit codes (0, 1, 3)
helpstyle.py    how --help reads (click's plain layout, FILE in the usage line)
transfer.py     backup, restore, resume, undo
inspection.py   validate (with listing.py: what a file holds), jobs
service.py      serve, worker, demo (with tour.py: the demo's backup and restores)
display.py      summaries and the jobs list (bars.py: the live progress block)
"""

from __future__ import annotations

from .app import app

# Each module registers its commands; --help lists them in this order.
# isort: off
from . import transfer  # noqa: F401
from . import inspection  # noqa: F401
from . import service  # noqa: F401
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    app()
