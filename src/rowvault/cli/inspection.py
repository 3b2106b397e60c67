"""`rowvault validate` and `rowvault jobs`: commands that look and write nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ..errors import BackupFileError, ValidationError
from ..file.reader import BackupFile
from ..jobs import StateStore
from ..jobs.runner import interrupt_gone
from ..jobs.store import masked_url
from ..restore import validate as run_validate
from ..settings import load_settings
from .app import EXIT_FAILED, command
from .display import console, error, jobs_list, plain
from .listing import file_listing, header_lines, table_lines


@command
def validate(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Backup file to check.", show_default=False)],
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            envvar="DATABASE_URL",
            help="Also check that it fits this database.",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")] = False,
) -> None:
    """List what a backup holds, and check it.

    Like `pg_restore --list`: format and version, generator, source dialect, creation time,
    the options it was made with, and each table's record count and columns. With --db, also
    check that it fits that database. Nothing is written."""
    try:
        summary = BackupFile(file).scan()
    except BackupFileError as exc:
        if not json_output:
            raise
        _print_json({"file": str(file), "valid": False, "error": str(exc)})
        raise typer.Exit(EXIT_FAILED) from None
    listing: dict[str, Any] = {**file_listing(summary), "valid": True}
    fit = _fit(db, file, summary) if db else None
    if json_output:
        _print_json({**listing, "fit": fit})
    else:
        _print_listing(listing, fit)
    if fit is not None and not fit["fits"]:
        raise typer.Exit(EXIT_FAILED)


def _fit(db: str, file: Path, summary: Any) -> dict[str, Any]:
    """Whether the file fits the database `db`, without writing: its warnings and the tables
    a restore would create, or every problem."""
    shown = masked_url(db) if "://" in db else db
    try:
        plan = run_validate(db, file, summary=summary)
    except ValidationError as exc:
        return {"database": shown, "fits": False, "problems": exc.problems, "error": str(exc)}
    return {
        "database": shown,
        "fits": True,
        "warnings": list(plan.warnings),
        "tablesToCreate": [tp.name for tp in plan.created],
    }


def _print_json(answer: Any) -> None:
    typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())


def _print_listing(listing: dict[str, Any], fit: dict[str, Any] | None) -> None:
    plain(f"{listing['file']}")
    for line in header_lines(listing, console.width):
        plain(line)
    plain("")
    for text in table_lines(listing, console.width):
        console.print(text, no_wrap=True, overflow="ignore", crop=False)
    plain("")
    counted = ", counts as in its metadata" if listing["format"] == "rowvault" else ""
    plain(f"the file is sound: {listing['records']:,} records in {len(listing['tables'])} tables{counted}")
    if fit is None:
        return
    if not fit["fits"]:
        error(fit["error"])
        return
    for warning in fit["warnings"]:
        plain(f"warning: {warning}")
    created = fit["tablesToCreate"]
    plain("it fits the database" + (f"; tables to create: {', '.join(created)}" if created else ""))


@command
def jobs(
    json_output: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="How many, newest first.")] = 20,
) -> None:
    """Recent jobs in the state store, newest first.

    The state store is under ROWVAULT_HOME, or at ROWVAULT_STATE_URL."""
    settings = load_settings()
    if not settings.state_url and not (settings.home / "state.db").exists():
        plain("no jobs yet")
        return
    store = StateStore(settings.state_database)
    try:
        interrupt_gone(store)
        recent = store.recent(limit)
    finally:
        store.close()
    if json_output:
        _print_json([job.progress_record() for job in recent])
        return
    jobs_list(recent)
