"""The live progress block of a backup, restore, resume or undo, drawn to fit the terminal.

Every line is cut to the terminal's width before rich sees it, so nothing wraps: the columns
are sized once, from the first report that lists the tables (the longest name, the largest
count), and never move while the width stays the same; a name longer than its column is
shortened, a count never is. When the tables do not fit the terminal's height, the finished
ones become one summary line and the waiting ones another.

The engine reports on its own thread; each report is copied into a `Shot` that the drawing
thread reads whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from ..progress import PHASES, Progress

RATE_WIDTH = len("999,999 rec/s")
ENDINGS = {"completed": "done", "error": "stopped by an error", "cancelled": "cancelled"}
MIN_BAR = 10
MAX_BAR = 50


@dataclass(frozen=True)
class TableShot:
    name: str
    processed: int
    total: int
    rate: float | None

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.processed >= self.total


@dataclass(frozen=True)
class Shot:
    """One progress report, as the block draws it."""

    processed: int
    total: int
    rate: float | None
    eta: float | None
    finished: bool
    stage: str
    tables: tuple[TableShot, ...]
    reading: tuple[int, int | None] | None = None
    """While the file is read before the data: bytes read, of the file's size."""


@dataclass(frozen=True)
class Columns:
    """Widths of the bar lines' columns; `rate` and `percent` are 0 when left out."""

    name: int
    bar: int
    count: int
    percent: int
    rate: int


def stage_text(progress: Progress) -> str:
    """What the job is doing: waiting out a failure, else its stage (the engine's `phase`)."""
    retrying = getattr(progress, "retrying", None)
    if isinstance(retrying, dict) and retrying:
        attempt, attempts = retrying.get("attempt"), retrying.get("attempts")
        return f"waiting out a failure, attempt {attempt} of {attempts}: {retrying.get('reason', '')}"
    if progress.finished:
        return ENDINGS.get(progress.status, progress.status)
    phase = getattr(progress, "phase", None)
    if phase is None:
        return ""
    if isinstance(phase, str):
        return phase
    label = PHASES.get(getattr(phase, "name", ""), str(getattr(phase, "name", phase)))
    total = getattr(phase, "total", None)
    if getattr(phase, "name", None) == "reading":
        return label  # its bytes have a bar line of their own
    return f"{label} ({phase.done:,} of {total:,})" if total else label


class TableRates:
    """Each table's records per second while it moved: from the last report before its count
    first changed to the last report it changed in."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seen: dict[str, tuple[float, int, float, int]] = {}

    def rate(self, name: str, processed: int) -> float | None:
        now = self.clock()
        first_at, first, last_at, last = self.seen.get(name, (now, processed, now, processed))
        if processed != last:
            last_at, last = now, processed
        elif last == first:  # not moving yet: its time starts later
            first_at = last_at = now
        self.seen[name] = (first_at, first, last_at, last)
        seconds = last_at - first_at
        return (last - first) / seconds if seconds >= 0.5 else None


def shot_of(progress: Progress, rates: TableRates) -> Shot:
    tables = tuple(
        TableShot(name, count.processed, count.total, rates.rate(name, count.processed))
        for name, count in progress.counts.items()
    )
    return Shot(
        processed=progress.processed,
        total=progress.total,
        rate=progress.rate,
        eta=progress.eta_seconds,
        finished=progress.finished,
        stage=stage_text(progress),
        tables=tables,
        reading=_reading(progress),
    )


def _reading(progress: Progress) -> tuple[int, int | None] | None:
    phase = progress.phase
    if phase is None or phase.name != "reading" or progress.finished:
        return None
    return phase.done, phase.total


class ProgressBlock:
    """A progress callback, and the rich renderable that draws its latest report."""

    def __init__(self, label: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.clock = clock
        self.started = clock()
        self.rates = TableRates(clock)
        self.shot: Shot | None = None
        self.ended: float | None = None
        self.collapsed = False
        self._sizing: tuple[tuple[str, ...], int] | None = None
        """The table names and the widest count, from the first report that lists tables."""
        self._layout: tuple[int, Columns] | None = None

    def __call__(self, progress: Progress, /) -> None:
        shot = shot_of(progress, self.rates)
        if self._sizing is None and shot.tables:  # the columns are sized once
            widest = max(shot.total, *(t.total for t in shot.tables))
            self._sizing = (tuple(t.name for t in shot.tables), len(f"{widest:,}"))
        if shot.finished and self.ended is None:
            self.ended = self.clock()
        self.shot = shot

    def end(self) -> None:
        """Draw only the stage and total lines from now on: the summary lists the tables."""
        self.collapsed = True
        if self.ended is None:
            self.ended = self.clock()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or console.height
        yield from self.lines(width, height)

    def lines(self, width: int, height: int) -> Iterator[Text]:
        shot = self.shot
        if shot is None:  # nothing reported yet: nothing to draw
            return
        if self._sizing is None:
            yield self._stage_line(shot, width)
            if shot.reading is not None:
                yield _bytes_line(*shot.reading, width)
            return
        columns = self._columns(width, self._sizing)
        yield self._stage_line(shot, min(width, _width(columns)))
        yield self._bar_line("total", shot.processed, shot.total, self._total_rate(shot), columns)
        if self.collapsed:
            return
        yield from self._table_lines(shot, columns, max(1, height - 3))

    # -- lines ---------------------------------------------------------------------------

    def _stage_line(self, shot: Shot, width: int) -> Text:
        now = self.ended if self.ended is not None else self.clock()
        clock = _duration(now - self.started)
        if not shot.finished and shot.eta is not None:
            clock += f" · eta {_duration(shot.eta)}"
        stage = shot.stage
        left = f"{self.label} · {stage}" if stage else self.label
        room = width - len(clock) - 2
        if room < len(self.label):
            return _cut(Text(left, style="bold"), width)
        line = _cut(Text(left, style="bold"), room)
        line.append(" " * (width - len(line) - len(clock)))
        line.append(clock, style="progress.elapsed")
        return line

    def _bar_line(self, name: str, done: int, total: int, rate: float | None, columns: Columns) -> Text:
        line = Text("  ")
        line.append(_fit(name, columns.name))
        if columns.bar:
            line.append(" ")
            line.append_text(_bar(done, total, columns.bar))
        count = f"{done:,}/{total:,}" if total else f"{done:,}"
        line.append(" " + count.rjust(columns.count), style="progress.download")
        if columns.percent:
            percent = f"{min(100, 100 * done // total)}%" if total else ""
            line.append(" " + percent.rjust(columns.percent), style="progress.percentage")
        if columns.rate:
            line.append(" " + _rate(rate).rjust(columns.rate), style="progress.data.speed")
        line.rstrip()
        return line

    def _table_lines(self, shot: Shot, columns: Columns, room: int) -> Iterator[Text]:
        tables = list(shot.tables)
        if len(tables) <= room:
            for t in tables:
                yield self._bar_line(t.name, t.processed, t.total, t.rate, columns)
            return
        done = [t for t in tables if t.finished]
        rest = [t for t in tables if not t.finished]
        if done:
            records = sum(t.processed for t in done)
            yield _cut(
                Text(f"  ✓ {_tables(len(done))} done: {records:,} records", style="green"), _width(columns)
            )
            room -= 1
        shown = rest if len(rest) <= room else rest[: max(0, room - 1)]
        for t in shown:
            yield self._bar_line(t.name, t.processed, t.total, t.rate, columns)
        waiting = rest[len(shown) :]
        if waiting:
            records = sum(t.total - t.processed for t in waiting)
            text = f"  + {_tables(len(waiting))} to go: {records:,} records"
            yield _cut(Text(text, style="dim"), _width(columns))

    def _total_rate(self, shot: Shot) -> float | None:
        """The current rate; none once the run ended (its summary says how fast it went)."""
        return None if shot.finished or self.collapsed else shot.rate

    def _columns(self, width: int, sizing: tuple[tuple[str, ...], int]) -> Columns:
        if self._layout is None or self._layout[0] != width:
            self._layout = (width, _layout(width, *sizing))
        return self._layout[1]


def _layout(width: int, names: tuple[str, ...], count_width: int) -> Columns:
    """Column widths for `width`: the bar gets what is left, at least MIN_BAR, else the rate
    goes, then the percentage, then the names shrink, then the bar."""
    name = min(max([len("total"), *map(len, names)]), max(10, width // 4))
    count = 2 * count_width + 1
    rate, percent = RATE_WIDTH, len("100%")
    for dropped in range(4):
        if dropped == 1:
            rate = 0
        if dropped == 2:
            percent = 0
        if dropped == 3:
            name = max(5, min(name, width - count - 4 - MIN_BAR))
        bar = min(MAX_BAR, width - _width(Columns(name, 0, count, percent, rate)) - 1)
        if bar >= MIN_BAR:
            return Columns(name, bar, count, percent, rate)
    return Columns(name, 0, count, percent, rate)


def _width(columns: Columns) -> int:
    """The width of a bar line with these columns."""
    used = 2 + columns.name + 1 + columns.count
    used += columns.bar + 1 if columns.bar else 0
    used += columns.percent + 1 if columns.percent else 0
    used += columns.rate + 1 if columns.rate else 0
    return used


def _bar(done: int, total: int, width: int) -> Text:
    if total <= 0:
        return Text("─" * width, style="bar.back")
    halves = min(2 * width, 2 * width * done // total)
    full, half = divmod(halves, 2)
    style = "bar.finished" if done >= total else "bar.complete"
    bar = Text("━" * full, style=style)
    if half:
        bar.append("╸", style=style)
    bar.append("─" * (width - full - half), style="bar.back")
    return bar


def _bytes_line(done: int, total: int | None, width: int) -> Text:
    """`  file ━━━━╸──── 12.3/39.0 MB 31%`: the bytes of the file read so far."""
    count = _byte_count(done, total)
    percent = f"{min(100, 100 * done // total)}%" if total else ""
    line = Text("  file ")
    room = min(MAX_BAR, width - len(line) - len(count) - 1 - (len(percent) + 1 if percent else 0))
    if total and room >= MIN_BAR:
        line.append_text(_bar(done, total, room))
        line.append(" ")
    line.append(count, style="progress.download")
    if percent:
        line.append(" " + percent, style="progress.percentage")
    return _cut(line, width)


def _byte_count(done: int, total: int | None) -> str:
    """Bytes as `12.3/39.0 MB`, both in the unit of the larger."""
    scale = max(done, total or 0)
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if scale >= size:
            shown = f"{done / size:,.1f}" + (f"/{total / size:,.1f}" if total else "")
            return f"{shown} {unit}"
    return f"{done:,}" + (f"/{total:,}" if total else "") + " bytes"


def _rate(rate: float | None) -> str:
    """Records per second in at most RATE_WIDTH characters."""
    if not rate:
        return ""
    if rate < 1e6:
        return f"{rate:,.0f} rec/s"
    if rate < 1e9:
        return f"{rate / 1e6:.1f}M rec/s"
    return f"{min(rate / 1e9, 999):.0f}G rec/s"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _tables(n: int) -> str:
    return f"{n} table" if n == 1 else f"{n} tables"


def _fit(name: str, width: int) -> str:
    """A table name in a column of `width`: padded, or shortened with … at its end."""
    return name.ljust(width) if len(name) <= width else name[: width - 1] + "…"


def _cut(text: Text, width: int) -> Text:
    """`text` in `width` cells: whole words dropped from its end, so no count is ever cut in
    two, and … in their place (not after a number, which would look cut)."""
    if len(text) <= width:
        return text
    space = text.plain.rfind(" ", 0, max(0, width - 1))
    text.truncate(space if space > 0 else max(0, width - 1))
    if not text.plain[-1:].isdigit():
        text.append("…")
    return text


@contextmanager
def progress_block(label: str, console: Console, *, enabled: bool = True) -> Iterator[ProgressBlock | None]:
    """The live block for one run, ended (stage and total left on screen) when the run ends."""
    if not enabled:
        yield None
        return
    block = ProgressBlock(label)
    live = Live(block, console=console, refresh_per_second=8, transient=False, redirect_stdout=False)
    try:
        with live:
            try:
                yield block
            finally:
                block.end()
                live.refresh()
    finally:
        if block.shot is not None and not console.is_terminal:
            console.line()  # rich ends the last frame with a newline only on a terminal
