"""The typer app every command registers on, its shared options, and the one place errors
become exit codes: 0 success, 1 failed, 3 finished with record errors (2 is typer's usage
error). A user never sees a Python traceback for a mistake of theirs."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from .. import __version__
from ..dberrors import translate
from ..errors import ConfirmationRequired, RestoreAborted, RowvaultError
from .display import error, plain, restore_summary
from .helpstyle import Command

EXIT_OK, EXIT_FAILED, EXIT_RECORD_ERRORS = 0, 1, 3
F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="rowvault",
    rich_markup_mode=None,  # click's plain help: see helpstyle
    help="Backup and restore for the data of an application's SQL database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Db = Annotated[
    str,
    typer.Option(
        "--db",
        metavar="URL",
        envvar="DATABASE_URL",
        help="SQLAlchemy URL or SQLite file path (default: $DATABASE_URL).",
        show_default=False,
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def command(function: F) -> F:
    """Register `function` as a command whose errors become exit codes."""
    app.command(cls=Command)(errors_to_exit_codes(function))
    return function


def errors_to_exit_codes(command: F) -> F:
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
        stream=_CurrentStderr(),
    )


class _CurrentStderr:
    """Whatever `sys.stderr` is when a log line is written: while the progress block is live,
    rich's stand-in, which prints the line above the block instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
