"""`rowvault backup`, `restore`, `resume` and `undo`: thin over the engine and the job runner,
with the live progress block on the terminal."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ..backup import backup as run_backup
from ..errors import BackupFileError, OptionError
from ..file.rejects import default_rejects_path
from ..heap import frozen_heap
from ..jobs import Job, JobRunner, StateStore, new_runner
from ..jobs.model import new_job_id
from ..options import MODES, BackupOptions, Mode, RestoreOptions
from ..results import RestoreResult
from ..settings import load_settings
from .app import EXIT_FAILED, EXIT_OK, EXIT_RECORD_ERRORS, Db, JsonOutput, command
from .display import backup_summary, error, plain, progress_bars, restore_summary


def _split(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _limits(values: list[str] | None) -> dict[str, int]:
    limits = {}
    for value in values or []:
        table, sep, count = value.partition("=")
        if not sep or not table.strip() or not count.strip().isdigit():
            raise typer.BadParameter(
                f"{value!r}: expected TABLE=N, e.g. audit_logs=1000", param_hint="--limit"
            )
        limits[table.strip()] = int(count)
    return limits


@command
def backup(
    db: Db = "",
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="Backup file; .gz for gzip.")
    ] = Path("backup.json.gz"),
    tables: Annotated[
        list[str] | None, typer.Option("--tables", metavar="A,B", help="Only these tables.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", metavar="A,B", help="Leave these tables out.")
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option("--limit", metavar="TABLE=N", help="Keep the table's N newest rows (repeatable)."),
    ] = None,
    no_demo_data: Annotated[
        bool,
        typer.Option("--no-demo-data", help="Leave out demo rows (is_demo) and rows referencing them."),
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """Write a backup of every table to a file, parents first.

    All tables are read in one snapshot, so the backup is consistent."""
    options = BackupOptions(
        tables=_split(tables) or None,
        exclude=_split(exclude),
        limits=_limits(limit),
        include_demo_data=not no_demo_data,
    )
    with progress_bars("backup", enabled=not json_output) as bars, frozen_heap():
        result = run_backup(db, output, options=options, progress=bars or _nothing)
    if json_output:
        typer.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        backup_summary(result)


def _nothing(progress: Any, /) -> None:
    pass


@command
def restore(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="Backup file (.json or .json.gz).", show_default=False)
    ],
    db: Db = "",
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            metavar=f"[{'|'.join(MODES)}]",
            help="Insert or update (upsert), insert only, skip existing rows, or replace (empties "
            "the tables first).",
        ),
    ] = "upsert",
    yes: Annotated[bool, typer.Option("--yes", help="Confirm a destructive mode (replace).")] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            metavar="N",
            envvar="RESTORE_BATCH_SIZE",
            help="Records per batch (default: adaptive).",
        ),
    ] = None,
    batch_delay_ms: Annotated[
        int,
        typer.Option(
            "--batch-delay-ms", metavar="MS", envvar="RESTORE_BATCH_DELAY_MS", help="Pause between batches."
        ),
    ] = 0,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            envvar="RESTORE_JOBS",
            min=1,
            max=16,
            help="Connections writing a table's batches at once, commits in file order "
            "(PostgreSQL; elsewhere one).",
        ),
    ] = 2,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")
    ] = False,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Leave out tables and columns the target lacks.")
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", metavar="FILE", help="Where failed records go (default: beside the file)."),
    ] = None,
    snapshot: Annotated[
        bool,
        typer.Option("--snapshot", help="Back up the tables it writes into first, so `rowvault undo` can."),
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """Restore a backup: validate it, then upsert it in batches.

    Tables are restored parents first. The restore is a job in the state store
    (ROWVAULT_HOME), visible to `rowvault jobs` and to a server on the same home, and can be
    resumed with `rowvault resume`."""
    job_id = new_job_id()
    options = {
        "mode": mode,
        "batchSize": batch_size,
        "batchDelayMs": batch_delay_ms,
        "jobs": jobs,
        "dryRun": dry_run,
        "skipUnknown": skip_unknown,
        "confirmReplace": yes,
        "rejectsPath": str((rejects or default_rejects_path(str(file), job_id)).resolve()),
        "fileName": file.name,
        "snapshot": snapshot,
    }
    RestoreOptions(  # refuse bad options before a job is recorded
        mode=mode,
        batch_size=batch_size,
        batch_delay_ms=batch_delay_ms,
        dry_run=dry_run,
        confirm_replace=yes,
    )
    if not file.exists():
        raise BackupFileError(file, "no such file")
    with _runner(db) as runner:
        job = runner.create_restore(file.resolve(), options, job_id=job_id)
        with progress_bars("restore", enabled=not json_output) as bars, _ctrl_c_cancels(runner, job.id):
            job = runner.run(job.id, progress=bars)
    _report_job(job, json_output)


@contextmanager
def _ctrl_c_cancels(runner: JobRunner, job_id: str) -> Iterator[None]:
    """Ctrl-C stops the job after its current batch (it ends `cancelled`, resumable); a
    second Ctrl-C stops at once."""
    previous = signal.getsignal(signal.SIGINT)

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)
        runner.request_stop(job_id)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _report_job(job: Job, json_output: bool) -> None:
    result = RestoreResult.from_dict(job.result) if job.result else None
    if json_output:
        answer = {**(job.result or {}), "progressId": job.id, "status": job.status}
        if job.status != "completed":
            answer.update(success=False, error=job.error)
        typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    elif result is not None:
        restore_summary(result)
    if job.status != "completed":
        error(job.error or f"the restore ended {job.status}")
        if job.resumable:
            plain(f"job {job.id}: resume it with `rowvault resume {job.id}`")
        else:
            plain(f"job {job.id}: nothing was written; run the restore again once the problem is fixed")
        raise typer.Exit(EXIT_FAILED)
    plain(f"job {job.id}")
    raise typer.Exit(EXIT_OK if result is None or result.error_count == 0 else EXIT_RECORD_ERRORS)


@contextmanager
def _runner(db: str) -> Iterator[JobRunner]:
    settings = load_settings(DATABASE_URL=db or None)
    if not settings.database_url:
        raise OptionError("no database given: pass --db URL or set DATABASE_URL")
    runner = new_runner(settings, freeze_heap=True)  # the CLI is a process of rowvault's own
    try:
        runner.recover()
        yield runner
    finally:
        runner.close()
        runner.store.close()


@command
def resume(
    job_id: Annotated[
        str, typer.Argument(metavar="JOB_ID", help="The job (progress id) to resume.", show_default=False)
    ],
    db: Db = "",
    json_output: JsonOutput = False,
) -> None:
    """Resume an interrupted, cancelled or failed restore.

    It goes on from the job's checkpoint, into the database the job restored into unless
    --db says otherwise."""
    _run_job(db or _job_target(job_id), lambda runner: runner.prepare_resume(job_id), "restore", json_output)


def _job_target(job_id: str) -> str:
    """The database job `job_id` restored into, as the state store keeps it (no password)."""
    settings = load_settings()
    if not settings.state_url and not (settings.home / "state.db").exists():
        raise OptionError(f"no job {job_id}: there are no jobs in {settings.home}")
    store = StateStore(settings.state_database)
    try:
        job = store.get(job_id)
    finally:
        store.close()
    if job is None:
        raise OptionError(f"no job {job_id} in the state store; `rowvault jobs` lists them")
    if "***" in job.target:
        raise OptionError(
            f"job {job_id} restores into {job.target}, whose password is not stored: "
            "pass the full URL with --db or set DATABASE_URL"
        )
    return job.target


@command
def undo(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The restore to undo.", show_default=False)],
    db: Db = "",
    json_output: JsonOutput = False,
) -> None:
    """Put back what a restore run with --snapshot changed."""
    _run_job(db, lambda runner: runner.create_undo(job_id), "undo", json_output)


def _run_job(db: str, queue: Callable[[JobRunner], Job], label: str, json_output: bool) -> None:
    """Queue a job with `queue`, run it here with progress bars, report how it ended."""
    with _runner(db) as runner:
        job = queue(runner)
        with progress_bars(label, enabled=not json_output) as bars, _ctrl_c_cancels(runner, job.id):
            job = runner.run(job.id, progress=bars)
    _report_job(job, json_output)
