"""What the CLI draws: the live progress block (`bars`), the summaries printed when a command
ends, the list of jobs. Everything goes to stderr, so `--json` output on stdout stays clean.
Counts are never cut: their columns are as wide as their longest value, and text (table
names, paths) gives way instead."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..jobs.model import Job
from ..results import BackupResult, RestoreResult
from .bars import ProgressBlock, progress_block

console = Console(stderr=True, highlight=False)
MAX_ERRORS_SHOWN = 20
STATUS_WIDTH = len("interrupted")


@contextmanager
def progress_bars(label: str, *, enabled: bool = True) -> Iterator[ProgressBlock | None]:
    """A progress callback drawing the live block on the console (None when not `enabled`)."""
    with progress_block(label, console, enabled=enabled) as block:
        yield block


def restore_summary(result: RestoreResult) -> None:
    title = "dry run - nothing was written" if result.dry_run else "restore"
    rows = [
        (
            (t.table if t.target == t.table else f"{t.table} → {t.target}")
            + (" *" if t.created_table else ""),
            [t.total, t.created, t.updated, t.unchanged, t.failed],
        )
        for t in result.tables.values()
    ]
    console.print(
        Text(f"{title}: ", style="bold") + Text(middle_cut(result.database, _room() - len(title) - 2))
    )
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("table", overflow="fold")
    headers = ("records", "created", "updated", "unchanged", "failed")
    for i, header in enumerate(headers):
        widest = max([len(header), *(len(f"{numbers[i]:,}") for _, numbers in rows)])
        table.add_column(header, justify="right", no_wrap=True, min_width=widest)
    for name, numbers in rows:
        cells = [f"{n:,}" for n in numbers]
        table.add_row(name, *cells[:-1], Text(cells[-1], style="red" if numbers[-1] else ""))
    console.print(table)
    _restore_notes(result)
    console.print(_restore_total(result), soft_wrap=True)


def _restore_notes(result: RestoreResult) -> None:
    if any(t.created_table for t in result.tables.values()):
        console.print("* table created by this restore")
    for warning in result.warnings:
        console.print(Text("warning: ", style="yellow") + Text(warning))
    if result.skipped_tables:
        console.print(f"left out (not in the target): {', '.join(result.skipped_tables)}")
    for name, columns in result.skipped_columns.items():
        console.print(f"left out of {name}: {', '.join(columns)}")
    if result.error_count:
        console.print(Text(f"{result.error_count:,} record error(s):", style="bold red"))
        for message in result.errors[:MAX_ERRORS_SHOWN]:
            console.print(Text(f"  {message}"))
        if result.error_count > MAX_ERRORS_SHOWN:
            console.print(f"  ... and {result.error_count - MAX_ERRORS_SHOWN:,} more")
    if result.rejects_path:
        console.print(f"rejected records written to {result.rejects_path}")


def _restore_total(result: RestoreResult) -> str:
    """The last line: how far it got, and at what speed when the run ended and says so (a run
    that stopped has no time of its own: `0.0s (0/s)` would be a made-up figure)."""
    done = f"{result.processed:,} of {result.total:,} records"
    if result.status != "completed":
        return f"{done} processed before the restore stopped"
    if not result.seconds:
        return done
    return f"{done} in {result.seconds:.1f}s ({result.processed / result.seconds:,.0f}/s)"


def backup_summary(result: BackupResult) -> None:
    rate = result.total / result.seconds if result.seconds else 0
    console.print(
        f"backed up {result.total:,} records from {len(result.tables)} tables in {result.seconds:.1f}s "
        f"({rate:,.0f}/s)"
    )
    console.print(f"{result.bytes_written / 1e6:,.1f} MB uncompressed, written to {result.path}")


def jobs_list(jobs: list[Job]) -> None:
    """Two lines a job: its id (whole), status and start; then what went where, and how far.
    Paths and URLs give way to the terminal's width, shortened in their middle."""
    if not jobs:
        plain("no jobs yet")
        return
    width = _room()
    console.print(Text("jobs, newest first", style="bold"))
    for job in jobs:
        p = job.progress_record()
        head = Text(job.id, style="cyan")
        head.append("  " + job.status.ljust(STATUS_WIDTH), style=_STATUS_STYLE.get(job.status, ""))
        head.append("  " + _when(job.started_at or job.created_at))
        console.print(head, no_wrap=True, overflow="ignore", crop=False)
        counts = f"{p.get('processed', 0):,} of {p.get('total', 0):,} records"
        errors = int(p.get("errorCount") or 0)
        counts += f", {errors:,} error{'' if errors == 1 else 's'}" if errors else ""
        source = job.options.get("fileName") or (Path(job.source).name if job.source else job.kind)
        target = job.target.removeprefix("sqlite:///") if job.target.startswith("sqlite:///") else job.target
        source, target = _fit_pair(source, target, max(16, width - 10 - len(counts)))
        what = (
            f"{target} → {source}" if job.kind == "backup" else f"{source} → {target}"
        )  # a backup: db → file
        console.print(Text(f"    {what} · {counts}"), soft_wrap=True)


def _fit_pair(first: str, second: str, room: int) -> tuple[str, str]:
    """Two texts in `room` characters together, each shortened in its middle as needed."""
    if len(first) + len(second) <= room:
        return first, second
    first_room = min(len(first), max(room // 3, room - len(second)))
    return middle_cut(first, first_room), middle_cut(second, room - first_room)


_STATUS_STYLE = {"completed": "green", "error": "red", "cancelled": "yellow", "interrupted": "yellow"}


def _room() -> int:
    """How wide a line may be: the terminal's width; unbounded in a pipe or a log, where
    nothing needs shortening."""
    return console.width if console.is_terminal else 1 << 16


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else ""


def middle_cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, its middle replaced by … (the ends of a path or
    URL tell the most)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]


def error(message: str) -> None:
    console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def plain(message: Any) -> None:
    console.print(message, soft_wrap=True)
