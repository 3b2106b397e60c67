"""The CLI as it looks in a real terminal: real commands run in a pseudo-terminal of a fixed
size, their output played through a terminal emulator (pyte), and the screens read as a user
would read them, frame by frame. At 80x24 and 120x40: no line longer than the width, no
count cut short, "rec/s" on its bar's line, the block of bars within the screen's height,
the bars standing still sideways, the stages in their order.

Each run keeps its screens as text under the test's tmp dir (`screens-*.txt`); the mid-run
and last frames are printed (see them with `pytest -s` or in a failure's captured output).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import rowvault
from rowvault.demo import build_demo
from rowvault.progress import PHASES

try:
    import pyte
except ImportError:  # pragma: no cover - the dev extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("pyte is not installed: pip install -e '.[dev]'", allow_module_level=True)

RECORDS = 50_000
DEMO_TABLES = 11
BAR = "━╸─"
CUT_COUNT = re.compile(r"[\d,]…|…[\d,/]")
BAR_LINE = re.compile(rf"^  (\S+)\s+([{BAR}]+) +[\d,]+/[\d,]+ ")
"""A bar line drawn whole (a frame caught mid-refresh may hold one cut short)."""
TIMEOUT = 180


@dataclass
class Frame:
    """One screen: as the user sees it (`rows`), and the same output on a screen three times
    wider, where anything past the real width shows (a line the terminal would have wrapped)."""

    rows: list[str]
    wide: list[str]

    def text(self) -> str:
        return "\n".join(row.rstrip() for row in self.rows)


@dataclass
class Run:
    status: int
    cols: int
    lines: int
    frames: list[Frame] = field(default_factory=list)

    @property
    def last(self) -> Frame:
        return self.frames[-1]


def run_in_terminal(args: list[str], *, cols: int, lines: int, env: dict[str, str]) -> Run:
    """`python -m rowvault.cli ARGS` in a pty of `cols` x `lines`; a frame after every burst
    of output (the live display writes each refresh at once)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, in the terminal
        try:
            os.environ.update(env)
            os.environ.update(COLUMNS=str(cols), LINES=str(lines), TERM="xterm-256color")
            for name in ("NO_COLOR", "FORCE_COLOR", "TERMINAL_WIDTH"):
                os.environ.pop(name, None)
            os.execv(sys.executable, [sys.executable, "-m", "rowvault.cli", *args])
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, cols, 0, 0))
    screen, wide = pyte.Screen(cols, lines), pyte.Screen(cols * 3, lines)
    streams = [pyte.ByteStream(screen), pyte.ByteStream(wide)]
    run = Run(status=-1, cols=cols, lines=lines)
    deadline = time.monotonic() + TIMEOUT
    try:
        while _read_burst(fd, streams, deadline):
            run.frames.append(Frame(list(screen.display), list(wide.display)))
    finally:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    run.status = os.waitstatus_to_exitcode(status)
    run.frames.append(Frame(list(screen.display), list(wide.display)))
    assert time.monotonic() <= deadline, f"{args} did not end in {TIMEOUT}s"
    return run


def _read_burst(fd: int, streams: list[pyte.ByteStream], deadline: float) -> bool:
    """Feed one burst of output to the screens; False once the command closed the terminal."""
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            break
    else:
        return False
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        for stream in streams:
            stream.feed(data)
        if not select.select([fd], [], [], 0.02)[0]:
            return True


def keep_screens(run: Run, folder: Path, name: str) -> None:
    """Write every frame to `folder/screens-NAME.txt`; print a mid-run one and the last."""
    path = folder / f"screens-{name}.txt"
    path.write_text(
        "\n".join(f"--- frame {i} ({run.cols}x{run.lines})\n{f.text()}" for i, f in enumerate(run.frames))
    )
    live = [f for f in run.frames if any(BAR_LINE.match(row) for row in f.rows)]
    middle = live[len(live) // 2] if live else run.frames[len(run.frames) // 2]
    print(f"\n=== {name}: a frame mid-run ===\n{middle.text()}\n=== {name}: the last frame ===")
    print(f"{run.last.text()}\n=== all frames in {path}")


# -- what every screen must hold -------------------------------------------------------------


def assert_nothing_wraps(run: Run) -> None:
    for i, frame in enumerate(run.frames):
        too_long = [row.rstrip() for row in frame.wide if len(row.rstrip()) > run.cols]
        assert not too_long, f"frame {i}: lines longer than {run.cols}: {too_long}"


def assert_no_count_is_cut(run: Run) -> None:
    for i, frame in enumerate(run.frames):
        cut = [row.rstrip() for row in frame.rows if CUT_COUNT.search(row)]
        assert not cut, f"frame {i}: a count cut short: {cut}"


def assert_rates_stay_on_their_bars(run: Run) -> None:
    for i, frame in enumerate(run.frames):
        for row in frame.rows:
            if "rec/s" in row:
                assert any(c in row for c in BAR), f"frame {i}: 'rec/s' off its bar's line: {row!r}"


def assert_bars_stand_still(run: Run) -> None:
    """Every bar of every frame starts and ends in the same columns."""
    spans: set[tuple[int, int]] = set()
    for frame in run.frames:
        for row in frame.rows:
            match = BAR_LINE.match(row)
            if match:
                spans.add((match.start(2), match.end(2)))
    assert len(spans) == 1, f"the bars moved sideways: spans {sorted(spans)}"


def bar_block(frame: Frame, label: str) -> list[str]:
    """The live block's lines: from its stage line to its last bar or summary line."""
    rows = [row.rstrip() for row in frame.rows]
    starts = [i for i, row in enumerate(rows) if row.startswith(f"{label} ·") or row == label]
    if not starts:
        return []
    block = [rows[starts[-1]]]
    for row in rows[starts[-1] + 1 :]:
        if not (BAR_LINE.match(row) or row.startswith(("  ✓", "  +"))):
            break
        block.append(row)
    return block


def live_frames(run: Run, label: str) -> list[list[str]]:
    """The blocks of the frames drawn while the run went on (not yet `done`)."""
    blocks = [bar_block(frame, label) for frame in run.frames]
    return [b for b in blocks if len(b) > 2 and "· done" not in b[0]]


def stages_seen(run: Run, label: str) -> list[str]:
    """The stages the stage line named, in the order they came (a count `(3 of 14)` left out)."""
    line = re.compile(rf"^{label} · (.+?)(?: \([\d,]+ of [\d,]+\))?\s+\d+:\d\d(?::\d\d)?(?: · eta \S+)?$")
    seen: list[str] = []
    for frame in run.frames:
        for row in frame.rows:
            match = line.match(row.rstrip())
            if match and (not seen or seen[-1] != match.group(1)):
                seen.append(match.group(1))
    return seen


def assert_a_screen_users_can_read(run: Run) -> None:
    assert_nothing_wraps(run)
    assert_no_count_is_cut(run)
    assert_rates_stay_on_their_bars(run)
    assert_bars_stand_still(run)


# -- the runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo database (11 tables, 50,000 records) and a backup of it."""
    folder = tmp_path_factory.mktemp("demo")
    build_demo(folder / "demo.db", RECORDS)
    rowvault.backup(folder / "demo.db", folder / "demo.json.gz")
    return folder / "demo.db", folder / "demo.json.gz"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """A restore slow enough to be seen: batches of 2,000 with a pause between them."""
    return {"ROWVAULT_HOME": str(home), "RESTORE_BATCH_SIZE": "2000", "RESTORE_BATCH_DELAY_MS": "20", **extra}


@pytest.mark.parametrize(("cols", "lines"), [(80, 24), (120, 40)])
def test_a_restore_reads_well_in_the_terminal(
    demo: tuple[Path, Path], tmp_path: Path, cols: int, lines: int
) -> None:
    _, backup = demo
    run = run_in_terminal(
        ["restore", str(backup), "--db", str(tmp_path / "t.db")],
        cols=cols,
        lines=lines,
        env=env_for(tmp_path),
    )
    keep_screens(run, tmp_path, f"restore-{cols}x{lines}")
    assert run.status == 0, run.last.text()
    assert_a_screen_users_can_read(run)
    blocks = live_frames(run, "restore")
    assert blocks, "no frame showed the bars while the restore ran"
    assert all(len(block) <= lines - 1 for block in blocks)
    whole = [b for b in blocks if len(b) == 2 + DEMO_TABLES]  # every table has its bar
    assert whole, f"no frame showed all {DEMO_TABLES} tables: {blocks[-1]}"
    assert any("rec/s" in row for b in blocks for row in b), "no rate was shown"
    final = run.last.text()
    assert f"{RECORDS:,} of {RECORDS:,} records" in final and "\njob " in final
    assert re.search(rf"^restore · done .*\n  total .*{RECORDS:,}/{RECORDS:,} 100%", final, re.M), final


def test_the_stages_of_a_restore_show_in_their_order(demo: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = demo
    run = run_in_terminal(
        ["restore", str(backup), "--db", str(tmp_path / "t.db")], cols=80, lines=24, env=env_for(tmp_path)
    )
    assert run.status == 0, run.last.text()
    seen = stages_seen(run, "restore")
    order = [*PHASES.values(), "done"]
    assert PHASES["data"] in seen and seen[-1] == "done", seen
    assert all(stage in order for stage in seen), seen
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen


def test_finished_tables_fold_into_one_line_on_a_short_terminal(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    _, backup = demo
    run = run_in_terminal(
        ["restore", str(backup), "--db", str(tmp_path / "t.db")], cols=80, lines=10, env=env_for(tmp_path)
    )
    keep_screens(run, tmp_path, "restore-80x10")
    assert run.status == 0, run.last.text()
    assert_a_screen_users_can_read(run)
    blocks = live_frames(run, "restore")
    assert blocks and all(len(block) <= 9 for block in blocks), blocks
    folded = [row for b in blocks for row in b if re.match(r"  ✓ \d+ tables? done: [\d,]+ records$", row)]
    assert folded, blocks


def test_a_backup_reads_well_in_the_terminal(demo: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = demo
    run = run_in_terminal(
        ["backup", "--db", str(db), "-o", str(tmp_path / "b.json.gz")],
        cols=80,
        lines=24,
        env=env_for(tmp_path),
    )
    keep_screens(run, tmp_path, "backup-80x24")
    assert run.status == 0, run.last.text()
    assert_a_screen_users_can_read(run)
    assert f"backed up {RECORDS:,} records from {DEMO_TABLES} tables" in run.last.text()


def test_jobs_are_listed_whole_at_80_columns(demo: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = demo
    deep = tmp_path / "a-folder-with-a-rather-long-name" / "and-another-one-below-it"
    deep.mkdir(parents=True)
    named = deep / "the-backup-of-the-application-database-made-before-the-upgrade.json.gz"
    named.write_bytes(backup.read_bytes())
    target = deep / "the-application-database-restored-for-checking.db"
    first = run_in_terminal(
        ["restore", str(named), "--db", str(target)], cols=80, lines=24, env=env_for(tmp_path)
    )
    assert first.status == 0, first.last.text()

    run = run_in_terminal(["jobs"], cols=80, lines=24, env=env_for(tmp_path))
    keep_screens(run, tmp_path, "jobs-80x24")
    assert run.status == 0, run.last.text()
    assert_nothing_wraps(run)
    screen = run.last.text()
    head = re.search(r"^([0-9a-f]{32})  completed\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", screen, re.M)
    assert head, screen  # the id whole, its status, when
    where = screen.splitlines()[screen.splitlines().index(head.group(0)) + 1]
    assert re.match(
        rf"    the-\S*…\S*json\.gz → /\S*…\S*checking\.db · {RECORDS:,} of {RECORDS:,} records$", where
    ), where


def test_validate_lists_the_file_at_80_columns(demo: tuple[Path, Path], tmp_path: Path) -> None:
    _, backup = demo
    run = run_in_terminal(["validate", str(backup)], cols=80, lines=60, env=env_for(tmp_path))
    keep_screens(run, tmp_path, "validate-80x60")
    assert run.status == 0, run.last.text()
    assert_nothing_wraps(run)
    assert_no_count_is_cut(run)
    screen = run.last.text()
    for fact in (
        "format          a rowvault backup, format version 1",
        "layout          rowvault line layout, gzip",
        f"generator       rowvault {rowvault.__version__}",
        "source dialect  sqlite",
        f"records         {RECORDS:,} in {DEMO_TABLES} tables",
    ):
        assert fact in screen, screen
    assert re.search(r"created at      \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", screen), screen
    assert re.search(r"^  business_products\s+20,000  id INTEGER, business_id INTEGER", screen, re.M), screen
    wrapped = re.search(r"^  business_products .*\n( {20,}\S.*\n)+", screen, re.M)
    assert wrapped, screen  # its long column list goes on under itself
    assert f"the file is sound: {RECORDS:,} records in {DEMO_TABLES} tables" in screen


# -- the block's layout at any size ----------------------------------------------------------


def test_the_block_fits_any_width_and_height_without_cutting_a_count() -> None:
    """The block drawn from the engine's own progress record, big counts and a long table
    name, at widths from 40 to 200 and heights from 6 to 40: every line within the width, the
    block within the height, every count whole."""
    from io import StringIO

    from rich.console import Console

    from rowvault.cli.bars import ProgressBlock
    from rowvault.progress import Progress

    names = ["users", "a_table_with_a_name_longer_than_any_column", *(f"table_{i}" for i in range(12))]
    progress = Progress()
    progress.start({name: 12_345_678 for name in names})
    progress.enter_phase("data")
    for name in names[:5]:
        progress.advance(name, 12_345_678)
    progress.advance(names[5], 1_234_567)
    for width in range(40, 201, 8):
        for height in (6, 10, 24, 40):
            block = ProgressBlock("restore")
            block(progress)
            out = StringIO()
            Console(file=out, width=width, height=height, color_system=None).print(block)
            lines = out.getvalue().splitlines()
            assert all(len(line) <= width for line in lines), (width, lines)
            assert len(lines) <= height - 1, (width, height, lines)
            assert not any(CUT_COUNT.search(line) for line in lines), lines
            assert f"{progress.processed:,}/{progress.total:,}" in lines[1], lines
