"""The `rowvault` command: thin typer commands over the library.

Errors become exit codes in one place (`_errors_to_exit_codes`): 0 success, 1 failed,
3 finished with record errors. A user never sees a Python traceback for a mistake of theirs.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from . import __version__
from .backup import backup as run_backup
from .clidisplay import backup_summary, error, jobs_table, plain, progress_bars, restore_summary
from .dberrors import translate
from .errors import (
    BackupFileError,
    ConfirmationRequired,
    OptionError,
    RestoreAborted,
    RowvaultError,
    ValidationError,
)
from .heap import frozen_heap
from .jobs import Job, JobRunner, StateStore, new_runner
from .jobs.model import new_job_id
from .jobs.runner import interrupt_gone
from .jobs.store import masked_url
from .options import MODES, BackupOptions, RestoreOptions
from .reader import BackupFile
from .rejects import default_rejects_path
from .restore import validate as run_validate
from .results import RestoreResult
from .settings import Settings, load_settings

EXIT_OK, EXIT_FAILED, EXIT_RECORD_ERRORS = 0, 1, 3
F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="rowvault",
    help="Backup and restore for the data of an application's SQL database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Db = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="DATABASE_URL",
        help="SQLAlchemy URL or SQLite file path (default: $DATABASE_URL).",
        show_default=False,
    ),
]


def _errors_to_exit_codes(command: F) -> F:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RestoreAborted as exc:
            if exc.result is not None:
                restore_summary(exc.result)
            error(f"restore stopped: {exc.reason}")
            raise typer.Exit(EXIT_FAILED) from None
        except ConfirmationRequired as exc:
            error(f"{exc.action}; add --yes to confirm")
            raise typer.Exit(EXIT_FAILED) from None
        except RowvaultError as exc:
            error(str(exc))
            raise typer.Exit(EXIT_FAILED) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # the driver's words become rowvault's, once (dberrors)
            known = translate(exc)
            if known is None and not isinstance(exc, OSError):
                raise  # a bug in rowvault: its traceback is the report
            error(str(known or exc))
            raise typer.Exit(EXIT_FAILED) from None

    return run  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        plain(f"rowvault {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show log lines.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )


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


@app.command()
@_errors_to_exit_codes
def backup(
    db: Db = "",
    output: Annotated[Path, typer.Option("--output", "-o", help="Backup file; .gz for gzip.")] = Path(
        "backup.json.gz"
    ),
    tables: Annotated[list[str] | None, typer.Option("--tables", help="Only these tables (a,b).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Leave these tables out.")] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option("--limit", help="Keep the N newest rows: TABLE=N (repeatable)."),
    ] = None,
    no_demo_data: Annotated[
        bool,
        typer.Option("--no-demo-data", help="Leave out demo rows (is_demo) and rows referencing them."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a backup of every table (parents first, one snapshot) to a file."""
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


@app.command()
@_errors_to_exit_codes
def restore(
    file: Annotated[Path, typer.Argument(help="Backup file (.json or .json.gz).", show_default=False)],
    db: Db = "",
    mode: Annotated[
        str,
        typer.Option("--mode", help=f"One of {', '.join(MODES)}; replace empties the tables first."),
    ] = "upsert",
    yes: Annotated[bool, typer.Option("--yes", help="Confirm a destructive mode (replace).")] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            envvar="RESTORE_BATCH_SIZE",
            help="Records per batch (default: adaptive).",
        ),
    ] = None,
    batch_delay_ms: Annotated[
        int,
        typer.Option("--batch-delay-ms", envvar="RESTORE_BATCH_DELAY_MS", help="Pause between batches."),
    ] = 0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")
    ] = False,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Leave out tables and columns the target lacks.")
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="Where failed records go (default: beside the file)."),
    ] = None,
    snapshot: Annotated[
        bool,
        typer.Option("--snapshot", help="Back up the tables it writes into first, so `rowvault undo` can."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore a backup: validate it, then upsert it in batches, parents first.

    The restore is a job in the state store (ROWVAULT_HOME), visible to `rowvault jobs` and
    to a server on the same home, and can be resumed with `rowvault resume`."""
    job_id = new_job_id()
    options = {
        "mode": mode,
        "batchSize": batch_size,
        "batchDelayMs": batch_delay_ms,
        "dryRun": dry_run,
        "skipUnknown": skip_unknown,
        "confirmReplace": yes,
        "rejectsPath": str((rejects or default_rejects_path(str(file), job_id)).resolve()),
        "fileName": file.name,
        "snapshot": snapshot,
    }
    RestoreOptions(  # refuse bad options before a job is recorded
        mode=mode,  # type: ignore[arg-type]
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


@app.command()
@_errors_to_exit_codes
def resume(
    job_id: Annotated[str, typer.Argument(help="The job (progress id) to resume.", show_default=False)],
    db: Db = "",
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Resume an interrupted, cancelled or failed restore from its checkpoint (into the
    database the job restored into, unless --db says otherwise)."""
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


@app.command()
@_errors_to_exit_codes
def undo(
    job_id: Annotated[str, typer.Argument(help="The restore to undo.", show_default=False)],
    db: Db = "",
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
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


@app.command()
@_errors_to_exit_codes
def jobs(
    json_output: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 20,
) -> None:
    """Recent jobs in the state store (ROWVAULT_HOME or ROWVAULT_STATE_URL), newest first."""
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
        typer.echo(
            orjson.dumps([job.progress_record() for job in recent], option=orjson.OPT_INDENT_2).decode()
        )
        return
    jobs_table(recent)


@app.command()
@_errors_to_exit_codes
def serve(
    db: Db = "",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API and the web page."""
    settings = load_settings(DATABASE_URL=db or None)
    _serve(settings, host, port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from .web import create_app

    if not settings.database_url:
        raise OptionError("no database given: pass --db URL or set DATABASE_URL")
    if not _loopback(host) and not settings.token_value:
        raise OptionError(
            f"refusing to listen on {host} without a token: set ROWVAULT_TOKEN, or listen on 127.0.0.1"
        )
    if settings.jobs == "celery":
        from .jobs import celery_queue  # says so if Celery is not installed
    _check_port(host, port)
    StateStore(settings.state_database).close()  # an unusable state store: a clear error, now
    web_app = create_app(settings, host=host, port=port)
    logging.getLogger("rowvault").setLevel(logging.INFO)
    shown = f"[{host}]" if ":" in host else host
    plain(f"rowvault {__version__} serving {_shown(settings.database_url)}")
    plain(f"open http://{shown}:{port} (Ctrl-C stops it)")
    plain(f"answering for the host names {', '.join(web_app.state.allowed_hosts)} (ROWVAULT_ALLOWED_HOSTS)")
    if settings.state_url:
        plain(f"jobs are recorded in {masked_url(settings.state_url)}")
    if settings.jobs == "celery":
        plain(f"restores are queued for Celery on {celery_queue.masked_broker_url(settings.broker_url)}:")
        plain("run `rowvault worker --celery` (same database, ROWVAULT_HOME, ROWVAULT_STATE_URL and")
        plain("ROWVAULT_BROKER_URL) where they should run")
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


def _check_port(host: str, port: int) -> None:
    """Refuse, with a message, an address the server could not listen on (uvicorn would log
    the bind error and exit 3, the code for record errors)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host.strip("[]"), port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OptionError(
                f"cannot listen on {host}:{port}: the port is in use (another `rowvault serve`?); "
                "stop that server or pick another --port"
            ) from None
        raise OptionError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port"
        ) from None


def _shown(db: str) -> str:
    """A database URL with its password hidden; a SQLite path as it is."""
    return masked_url(db) if "://" in db else db


@app.command()
@_errors_to_exit_codes
def worker(
    db: Db = "",
    celery: Annotated[
        bool,
        typer.Option(
            "--celery",
            help="Take jobs from the Celery queue (ROWVAULT_BROKER_URL) of a server run with "
            "ROWVAULT_JOBS=celery, instead of looking for them in the state store.",
        ),
    ] = False,
) -> None:
    """Run queued restore jobs for a database until stopped.

    `serve` starts its own; run more on other machines that share the state store
    (ROWVAULT_STATE_URL) and ROWVAULT_HOME."""
    settings = load_settings(DATABASE_URL=db or None)
    if not settings.database_url:
        raise OptionError("no database given: pass --db URL or set DATABASE_URL")
    logging.getLogger("rowvault").setLevel(logging.INFO)
    if celery:
        from .jobs import celery_queue

        celery_queue.work(settings)
    else:
        from .jobs.worker import work

        work(settings)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
@_errors_to_exit_codes
def validate(
    file: Annotated[Path, typer.Argument(help="Backup file to check.", show_default=False)],
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="DATABASE_URL",
            help="Also check that it fits this database.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a backup file (and, with --db, its fit to a database) without writing anything."""
    summary = BackupFile(file).scan()
    layout = "rowvault line layout" if summary.layout == "lines" else "generic JSON"
    plain(
        f"{summary.name}: a backup ({layout}{', gzip' if summary.compressed else ''}) with "
        f"{summary.total:,} records in {len(summary.tables)} tables"
    )
    for table in summary.tables.values():
        plain(f"  {table.name}: {table.count:,}")
    if db:
        try:
            plan = run_validate(db, file)
        except ValidationError as exc:
            error(str(exc))
            raise typer.Exit(EXIT_FAILED) from None
        for warning in plan.warnings:
            plain(f"warning: {warning}")
        created = [tp.name for tp in plan.created]
        plain("it fits the database" + (f"; tables to create: {', '.join(created)}" if created else ""))


@app.command()
@_errors_to_exit_codes
def demo(
    records: Annotated[int, typer.Option("--records", help="Records in total.")] = 100_000,
    db: Annotated[
        str, typer.Option("--db", help="Where to build it (SQLite path or URL).")
    ] = "rowvault-demo.db",
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Only build the demo database.")] = False,
    port: Annotated[int, typer.Option("--port", help="Port of the web page.")] = 8000,
) -> None:
    """Build the demo database, show a backup and a restore of it, serve the web page on it.

    With --no-serve, only build the database."""
    from .demo import build_demo
    from .demo_tour import tour

    plain(f"building a demo database with {records:,} records in {db}")
    sizes = build_demo(db, records)
    plain(", ".join(f"{name} {n:,}" for name, n in sizes.items()))
    if no_serve:
        return
    backup_file = tour(db)
    home = {} if "ROWVAULT_HOME" in os.environ else {"ROWVAULT_HOME": str(backup_file.parent / ".rowvault")}
    settings = load_settings(DATABASE_URL=db, **home)
    plain(f"\nthe web page backs up and restores {db}; try uploading {backup_file}")
    _serve(settings, "127.0.0.1", port)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
