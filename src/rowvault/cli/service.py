"""`rowvault serve`, `worker` and `demo`: the long-running faces, started from the CLI."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from typing import Annotated

import typer

from .. import __version__
from ..errors import OptionError
from ..jobs import StateStore
from ..jobs.store import masked_url
from ..settings import Settings, load_settings
from .app import Db, command
from .display import plain


@command
def serve(
    db: Db = "",
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API and the web page."""
    settings = load_settings(DATABASE_URL=db or None)
    _serve(settings, host, port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from ..web import create_app

    if not settings.database_url:
        raise OptionError("no database given: pass --db URL or set DATABASE_URL")
    if not _loopback(host) and not settings.token_value:
        raise OptionError(
            f"refusing to listen on {host} without a token: set ROWVAULT_TOKEN, or listen on 127.0.0.1"
        )
    if settings.jobs == "celery":
        from ..jobs import celery_queue  # says so if Celery is not installed
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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@command
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
        from ..jobs import celery_queue

        celery_queue.work(settings)
    else:
        from ..jobs.worker import work

        work(settings)


@command
def demo(
    records: Annotated[int, typer.Option("--records", metavar="N", help="Records in total.")] = 100_000,
    db: Annotated[
        str, typer.Option("--db", metavar="DB", help="Where to build it (SQLite path or URL).")
    ] = "rowvault-demo.db",
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Only build the demo database.")] = False,
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port of the web page.")] = 8000,
) -> None:
    """Build a demo database, back it up, restore it, serve it.

    Shows a backup and two restores of it with their progress, then serves the web page on
    the demo database. With --no-serve, only build the database."""
    from ..demo import build_demo
    from .tour import tour

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
