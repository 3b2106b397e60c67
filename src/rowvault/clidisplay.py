"""What the CLI draws: rich progress bars fed by the engine's progress record, and the
summary tables printed when a command ends. Everything goes to stderr, so `--json` output on
stdout stays clean."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import (
    Progress as Bars,
)
from rich.table import Table
from rich.text import Text

from .progress import Progress
from .results import BackupResult, RestoreResult

console = Console(stderr=True, highlight=False)
MAX_ERRORS_SHOWN = 20


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "", style="progress.data.speed")


class ProgressBars:
    """A progress callback that draws an overall bar and one bar per table."""

    def __init__(self, bars: Bars, label: str) -> None:
        self.bars = bars
        self.label = label
        self.overall: TaskID | None = None
        self.tables: dict[str, TaskID] = {}

    def __call__(self, progress: Progress, /) -> None:
        bars = self.bars
        if self.overall is None:
            self.overall = bars.add_task(self.label, total=progress.total or None)
        bars.update(self.overall, completed=progress.processed, total=progress.total or None)
        for name, count in progress.counts.items():
            if name not in self.tables:
                if count.processed == 0 and name != progress.model:
                    continue
                self.tables[name] = bars.add_task(f"  {name}", total=count.total or None)
            bars.update(self.tables[name], completed=count.processed, total=count.total or None)


@contextmanager
def progress_bars(label: str, *, enabled: bool = True) -> Iterator[ProgressBars | None]:
    if not enabled:
        yield None
        return
    bars = Bars(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with bars:
        yield ProgressBars(bars, label)


def restore_summary(result: RestoreResult) -> None:
    title = "dry run - nothing was written" if result.dry_run else "restore"
    table = Table(title=f"{title}: {result.database}", title_justify="left")
    table.add_column("table", no_wrap=True)
    for column in ("records", "created", "updated", "unchanged", "failed"):
        table.add_column(column, justify="right")
    for t in result.tables.values():
        name = t.table if t.target == t.table else f"{t.table} → {t.target}"
        table.add_row(
            name + (" *" if t.created_table else ""),
            f"{t.total:,}",
            f"{t.created:,}",
            f"{t.updated:,}",
            f"{t.unchanged:,}",
            Text(f"{t.failed:,}", style="red" if t.failed else ""),
        )
    console.print(table)
    if any(t.created_table for t in result.tables.values()):
        console.print("* table created by this restore")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", markup=True)
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
    console.print(_restore_total(result))


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
        f"backed up {result.total:,} records from {len(result.tables)} tables to {result.path} "
        f"({result.bytes_written / 1e6:,.1f} MB uncompressed) in {result.seconds:.1f}s "
        f"({rate:,.0f}/s)"
    )


def jobs_table(jobs: list[Any]) -> None:
    if not jobs:
        plain("no jobs yet")
        return
    table = Table(title="jobs, newest first", title_justify="left")
    for column in ("id", "status", "records", "errors", "file", "started"):
        table.add_column(column, no_wrap=column in ("id", "status"))
    for job in jobs:
        p = job.progress_record()
        started = p.get("startedAt") or ""
        table.add_row(
            job.id,
            job.status,
            f"{p.get('processed', 0):,}/{p.get('total', 0):,}",
            str(p.get("errorCount", 0)),
            Path(job.source).name if job.source else "",
            started.replace("T", " ")[:19],
        )
    console.print(table)


def error(message: str) -> None:
    console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def plain(message: Any) -> None:
    console.print(message, soft_wrap=True)
