"""The Backup tab in Chromium against a real `rowvault serve` (issue 11 item 10): the tables come
from the database, any table can be limited to its newest rows, demo rows can be left out
only where a table flags them, gzip is on by default; the backup runs as a job whose bar
moves to 100% like a restore's, and then offers its file. And a restore started from the page
shows the reading of its file as a stage (item 2). Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo
from rowvault.progress import PHASES

from .browser_support import (
    BAR_RECORDER,
    IN_CI,
    PHASE_RECORDER,
    PHONE,
    bar_is_full,
    chromium,
    open_page,
    require_chromium,
    running_server,
    screenshot,
    table_counts,
)

try:
    from playwright import sync_api
except ImportError:
    if IN_CI:
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)
expect = sync_api.expect

RECORDS = 100_000
DEMO_TABLES = 11
FINISHED = 120_000
READING_RECORDS = 400_000


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    require_chromium()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backup-page")
    build_demo(f"sqlite:///{root / 'demo.db'}", RECORDS)
    return root / "demo.db"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with open_page(browser, init_script=BAR_RECORDER + PHASE_RECORDER) as tab:
        yield tab


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def demo_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sum(
                int(conn.execute(sa.text(f"SELECT count(*) FROM {t} WHERE is_demo")).scalar_one())
                for t in ("users", "businesses")
            )
    finally:
        engine.dispose()


def test_a_backup_from_the_tab_runs_as_a_job_then_offers_its_file(
    page: Any, demo_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "served.db"
    shutil.copy(demo_db, db)
    before = table_counts(f"sqlite:///{db}")
    assert demo_rows(f"sqlite:///{db}") > 0, "the demo database flags some rows as demo data"
    with running_server(db, tmp_path / "home") as server:
        page.goto(server.url + "/#/backup")
        expect(page.locator("#table-picks li")).to_have_count(DEMO_TABLES)
        expect(page.locator("#pick-count")).to_have_text(f"all {DEMO_TABLES} tables")
        expect(page.locator("#gzip")).to_be_checked()
        expect(page.locator("#demo-field")).to_be_visible()
        expect(page.locator("#demo-help")).to_contain_text("users")
        expect(page.locator("#leave-out-demo")).not_to_be_checked()

        page.click("#add-limit")
        row = page.locator("#limits li").first
        row.locator("select").select_option("audit_logs")
        row.locator("input").fill("10")
        page.click("#add-limit")  # a second limit, then taken back
        expect(page.locator("#limits li")).to_have_count(2)
        page.locator("#limits li").nth(1).locator("button").click()
        expect(page.locator("#limits li")).to_have_count(1)
        page.check("#leave-out-demo")
        assert no_horizontal_scroll(page)
        screenshot(page, "backup-1-form")
        page.set_viewport_size(PHONE)
        assert no_horizontal_scroll(page)
        screenshot(page, "backup-1-form-phone", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})

        page.click("#start-backup")
        page.wait_for_url(re.compile(r"#/job/[0-9a-f]+$"))
        expect(page.locator("#job-title")).to_have_text(re.compile(r"^Back(ing up…|up (queued|completed))$"))
        expect(page.locator("a[data-tab=backup]")).to_have_attribute("aria-current", "page")
        expect(page.locator("#backup-file")).to_be_visible(timeout=FINISHED)
        expect(page.locator("#job-status")).to_have_text("completed")
        expect(page.locator("#job-title")).to_have_text("Backup completed")
        expect(page.locator("#backup-file")).to_contain_text(re.compile(r"Download the backup \(\d"))
        expect(page.locator("#percent")).to_have_text("100%")
        assert bar_is_full(page, "overall-bar")
        values = page.evaluate("window.__bars.overall")
        assert values[-1] == 100, values
        for hidden in ("#resume", "#undo", "#rejects", "#summary"):
            expect(page.locator(hidden)).to_be_hidden()
        expect(page.locator("#again")).to_have_text("Make another backup")
        expect(page.locator("#job-file")).to_have_text(re.compile(r"^rowvault-backup-[\d-]+\.json\.gz$"))
        assert no_horizontal_scroll(page)
        screenshot(page, "backup-2-finished")
        page.set_viewport_size(PHONE)
        assert no_horizontal_scroll(page)
        screenshot(page, "backup-2-finished-phone", full_page=True)

        with page.expect_download() as download:
            page.click("#backup-file")
        assert re.match(r"^rowvault-backup-[\d-]+\.json\.gz$", download.value.suggested_filename)
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)

        page.click("a[data-tab=history]")
        item = page.locator("#jobs li").first
        expect(item).to_contain_text("Backup · gzip")
        expect(item).to_contain_text("served.db → rowvault-backup-")
        screenshot(page, "backup-3-history-phone")

    restored = f"sqlite:///{tmp_path / 'from-backup.db'}"
    rowvault.restore(restored, saved)
    counts = table_counts(restored)
    assert counts["audit_logs"] == 10
    assert demo_rows(restored) == 0
    assert 0 < counts["users"] < before["users"]


LONG_BACKUP_ROWS = 2_000_000


def test_a_backup_that_takes_a_while_moves_its_bar_as_it_goes(page: Any, tmp_path: Path) -> None:
    """About 1.5 s of backup (the demo database of the test above is done in a few tenths of a
    second, between two of the stream's reads)."""
    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        con.executemany(
            "INSERT INTO notes VALUES (?, ?)",
            ((i, f"note {i} " + "x" * 40) for i in range(LONG_BACKUP_ROWS)),
        )
    con.close()
    with running_server(db, tmp_path / "home") as server:
        page.goto(server.url + "/#/backup")
        page.click("#start-backup")
        expect(page.locator("#backup-file")).to_be_visible(timeout=FINISHED)
        expect(page.locator("#processed")).to_have_text(f"{LONG_BACKUP_ROWS:,}")
        assert bar_is_full(page, "overall-bar")
        values = page.evaluate("window.__bars.overall")
        shown = sorted({v for v in values if 0 < v < 100})
        assert len(shown) >= 2, f"the bar showed only {values}"
        assert values == sorted(values), f"the bar went back: {values}"


def test_the_tab_offers_no_demo_option_where_no_table_flags_demo_rows(page: Any, tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, created_at TIMESTAMP)")
        conn.exec_driver_sql("INSERT INTO notes (body) VALUES ('a'), ('b'), ('c')")
    engine.dispose()
    with running_server(db, tmp_path / "home") as server:
        page.goto(server.url + "/#/backup")
        expect(page.locator("#table-picks li")).to_have_count(1)
        expect(page.locator("#add-limit")).to_be_enabled()
        expect(page.locator("#demo-field")).to_be_hidden()
        page.click("#add-limit")
        page.locator("#limits li input").fill("-1")
        page.click("#start-backup")
        expect(page.locator("#backup-error")).to_contain_text("whole number")
        page.locator("#limits li input").fill("2")
        page.click("#start-backup")
        expect(page.locator("#backup-file")).to_be_visible(timeout=FINISHED)
        expect(page.locator("#processed")).to_have_text("2")
        screenshot(page, "backup-4-plain-database")


def test_a_restore_from_the_page_shows_the_reading_of_its_file(page: Any, tmp_path: Path) -> None:
    """A plain JSON document (not rowvault's line layout, whose check runs at disk speed) is
    read record by record: a second or more, shown as the stage before the data."""
    records = [{"id": i, "body": f"note {i} " + "x" * 40} for i in range(READING_RECORDS)]
    backup = tmp_path / "notes.json"
    backup.write_bytes(orjson.dumps({"notes": records}))
    target = tmp_path / "target.db"
    engine = sa.create_engine(f"sqlite:///{target}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    engine.dispose()
    with running_server(target, tmp_path / "home") as server:
        page.goto(server.url + "/#/restore")
        page.set_input_files("#file", str(backup))
        page.click("#start")
        page.wait_for_url(re.compile(r"#/job/[0-9a-f]+$"), timeout=FINISHED)
        expect(page.locator("#summary")).to_be_visible(timeout=FINISHED)
        expect(page.locator("#job-status")).to_have_text("completed")
    phases = page.evaluate("window.__phases")
    reading = [i for i, p in enumerate(phases) if p.startswith(PHASES["reading"]) or " MB of " in p]
    data = [i for i, p in enumerate(phases) if PHASES["data"] in p]
    assert reading and data and reading[-1] < data[0], phases
    assert any(re.fullmatch(r"[\d.]+ MB of [\d.]+ MB", p) for p in phases), phases


def test_a_file_that_is_not_a_backup_fails_its_job_with_the_reason(page: Any, tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"metadata": {"format": "rowvault", "version": 1, "tables": {"t": {"count": 3}}}}')
    with running_server(tmp_path / "target.db", tmp_path / "home") as server:
        page.goto(server.url + "/#/restore")
        page.set_input_files("#file", str(bad))
        page.click("#start")
        page.wait_for_url(re.compile(r"#/job/[0-9a-f]+$"), timeout=FINISHED)
        expect(page.locator("#job-status")).to_have_text("error", timeout=FINISHED)
        expect(page.locator("#job-message")).to_contain_text(
            "the metadata lists 3 records but the file has none"
        )
        expect(page.locator("#job-message")).to_contain_text("Nothing was written")
        expect(page.locator("#resume")).to_be_hidden()
        screenshot(page, "backup-5-restore-refused")
