"""The web page in a real browser (Playwright driving Debian's Chromium) against a real
`rowvault serve`: upload and live progress, errors as they arrive (as text, never HTML), the
404 stop, the backup download and the token prompt. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import rowvault
from rowvault.demo import build_demo
from rowvault.demo import metadata as demo_metadata

from .backupfiles import Tables, read_backup, write_backup
from .browser_support import (
    BAR_RECORDER,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    IN_CI,
    PHONE,
    POLL_INTERVAL_MS,
    Server,
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

BIG = 50_000
SMALL = 2_000
XSS = "<img src=x onerror=window.__xss=1>"
FINISHED = 60_000  # ms a restore may take in the page
ONE_BAD_PRODUCT = re.compile(r"^Completed with \d+ errors$")  # the product, and its children skipped


@dataclass
class Data:
    root: Path
    big: Path
    """A backup of a 50,000-record demo database."""
    small: Path
    """A backup of the server's database as it was at the start."""
    small_db: Path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("browser")
    build_demo(f"sqlite:///{root / 'big.db'}", BIG)
    rowvault.backup(f"sqlite:///{root / 'big.db'}", root / "big.json.gz")
    build_demo(f"sqlite:///{root / 'small.db'}", SMALL)
    rowvault.backup(f"sqlite:///{root / 'small.db'}", root / "small.json.gz")
    return Data(root, root / "big.json.gz", root / "small.json.gz", root / "small.db")


@pytest.fixture(scope="module")
def server(data: Data) -> Iterator[Server]:
    db = data.root / "served.db"
    shutil.copy(data.small_db, db)
    with running_server(db, data.root / "home") as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    """Checked before the (slower) data and server fixtures are built."""
    require_chromium()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab (own sessionStorage) that fails the test on any uncaught script error."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.add_init_script(BAR_RECORDER)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    script_errors: list[str] = []
    tab.on("pageerror", lambda error: script_errors.append(str(error)))
    yield tab
    context.close()
    assert not script_errors, f"the page raised: {script_errors}"


# -- helpers ----------------------------------------------------------------------------------


def record_key(table: str, record: dict[str, Any]) -> str:
    """`table:id` as the engine names a record in its messages (composite keys comma-joined)."""
    key = [c.name for c in demo_metadata.tables[table].primary_key.columns]
    return f"{table}:{','.join(str(record[k]) for k in key)}"


def spoil(tables: Tables) -> set[str]:
    """Break some products (children then fail as skipped) and some audit entries (leaves);
    return the key of every record the restore must report."""
    failed_products = set()
    for i, product in enumerate(tables["business_products"]):
        if i % 97 == 3:
            product["stock"] = "many"
            failed_products.add(product["id"])
    for i, entry in enumerate(tables["audit_logs"]):
        if i % 89 == 5:
            entry["created_at"] = "yesterday"
    expected = {
        record_key("business_products", p) for p in tables["business_products"] if p["id"] in failed_products
    }
    expected |= {record_key("audit_logs", e) for e in tables["audit_logs"] if e["created_at"] == "yesterday"}
    for child in ("attachments", "product_categories"):
        expected |= {record_key(child, r) for r in tables[child] if r["product_id"] in failed_products}
    return expected


def start_restore(page: Any, server: Server, backup: Path, *, mode: str = "upsert") -> str:
    """Choose the file, start, confirm replace if asked; return the progress id shown."""
    page.goto(server.url + "/#/restore")
    page.set_input_files("#file", str(backup))
    expect(page.locator("#drop-title")).to_have_text(backup.name)
    page.select_option("#mode", mode)
    page.click("#start")
    if mode == "replace":
        expect(page.locator("#replace-dialog")).to_be_visible()
        page.click("#replace-confirm")
    page.wait_for_url(re.compile(r"#/job/[0-9a-f]+$"))
    progress_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#job-id")).to_have_text(progress_id)
    return progress_id


def wait_finished(page: Any, status: str | re.Pattern[str] = "completed") -> None:
    expect(page.locator("#summary")).to_be_visible(timeout=FINISHED)
    expect(page.locator("#job-status")).to_have_text(status)


def shown_errors(page: Any) -> list[str]:
    return list(page.locator("#errors li").all_text_contents())


def summary_totals(page: Any) -> list[str]:
    return list(page.locator("#summary-foot td").all_text_contents())


def assert_no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page is {width}px wide in a {viewport}px window"


def assert_progressbar(bar: Any) -> None:
    assert bar.get_attribute("role") == "progressbar"
    assert bar.get_attribute("aria-valuemin") == "0"
    assert bar.get_attribute("aria-valuemax") == "100"
    assert bar.get_attribute("aria-label")
    assert bar.get_attribute("aria-valuenow") is not None


def drop_file(page: Any, path: Path) -> None:
    """Drop a file on the drop zone as a user dragging it from the desktop would."""
    page.evaluate(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "application/gzip"}));
            const zone = document.getElementById("drop");
            const init = {dataTransfer: transfer, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent("dragover", init));
            zone.dispatchEvent(new DragEvent("drop", init));
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_upload_shows_live_progress_then_the_summary(page: Any, server: Server, data: Data) -> None:
    polls: list[str] = []
    page.on("request", lambda r: "/api/backup/progress" in r.url and polls.append(r.url))
    page.goto(server.url + "/#/restore")
    page.set_input_files("#file", str(data.big))
    page.select_option("#mode", "replace")
    page.click("#start")
    expect(page.locator("#replace-dialog")).to_be_visible()
    screenshot(page, "browser-1-replace-confirm")
    page.click("#replace-confirm")
    page.wait_for_url(re.compile(r"#/job/[0-9a-f]+$"))
    page.wait_for_function(
        "Number(document.getElementById('overall-bar').getAttribute('aria-valuenow')) >= 20", timeout=FINISHED
    )
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#cancel")).to_be_visible()
    screenshot(page, "browser-1-restore-running")
    wait_finished(page)

    bars = page.evaluate("window.__bars")
    overall = bars["overall"]
    intermediate = [v for v in overall if 0 < v < 100]
    assert len(set(intermediate)) >= 3, f"the overall bar took only {overall}"
    assert intermediate == sorted(intermediate) and overall[-1] == 100
    assert 100 in bars["upload"], f"upload progress never reached 100%: {bars['upload']}"
    # Followed over the event stream, one request for the whole restore (polling: test_page_live).
    assert page.locator("#panel-job").get_attribute("data-source") == "stream"
    assert len(polls) == 1 and "/progress/stream?" in polls[0], polls

    expect(page.locator("#processed")).to_have_text("50,000")
    expect(page.locator("#percent")).to_have_text("100%")
    assert_progressbar(page.locator("#overall-bar"))
    table_bars = page.locator("#table-bars [role=progressbar]")
    assert table_bars.count() == len(demo_metadata.tables)
    for i in range(table_bars.count()):
        assert_progressbar(table_bars.nth(i))
        assert table_bars.nth(i).get_attribute("aria-valuenow") == "100"
    assert summary_totals(page) == ["Total", "50,000", "0", "0", "0"]
    assert page.locator("#summary-rows tr").count() == len(demo_metadata.tables)
    expect(page.locator("#errors-empty")).to_be_visible()
    expect(page.locator("#rejects")).to_be_hidden()
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#resume")).to_be_hidden()
    assert sum(table_counts(server.db_url).values()) == BIG

    assert_no_horizontal_overflow(page)
    screenshot(page, "browser-1-restore-finished")
    screenshot(page, "browser-1-restore-finished-full", full_page=True)
    page.set_viewport_size(PHONE)
    assert_no_horizontal_overflow(page)
    screenshot(page, "browser-1-restore-finished-phone")
    screenshot(page, "browser-1-restore-finished-phone-full", full_page=True)


def test_bad_records_each_appear_in_the_error_list(page: Any, server: Server, data: Data) -> None:
    metadata, tables = read_backup(data.small)
    expected = spoil(tables)
    bad = write_backup(data.root / "bad.json.gz", metadata, tables)

    start_restore(page, server, bad, mode="replace")
    wait_finished(page, f"Completed with {len(expected):,} errors")

    errors = shown_errors(page)
    assert len(errors) == len(expected)
    assert {message.split(" - ", 1)[0] for message in errors} == expected
    assert any("expected an integer, got 'many'" in m for m in errors)
    assert any("skipped: parent business_products:" in m for m in errors)
    expect(page.locator("#error-count")).to_have_text(str(len(expected)))
    expect(page.locator("#errors-title")).to_contain_text(f"({len(expected)})")
    assert summary_totals(page)[-1] == str(len(expected))
    expect(page.locator("#rejects")).to_be_visible()
    expect(page.locator("#error-report")).to_be_visible()
    with page.expect_download() as download:
        page.click("#rejects")
    assert download.value.suggested_filename.startswith("rejects-")
    page.locator("#errors").scroll_into_view_if_needed()
    screenshot(page, "browser-2-bad-records")
    screenshot(page, "browser-2-bad-records-full", full_page=True)


def test_error_text_from_a_backup_is_shown_as_text_and_runs_nothing(
    page: Any, server: Server, data: Data
) -> None:
    metadata, tables = read_backup(data.small)
    tables["business_products"][3]["stock"] = XSS
    hostile = write_backup(data.root / "hostile.json.gz", metadata, tables)

    page.goto(server.url + "/#/restore")
    drop_file(page, hostile)
    expect(page.locator("#drop-title")).to_have_text(hostile.name)
    page.click("#start")
    page.wait_for_url(re.compile(r"#/job/[0-9a-f]+$"))
    wait_finished(page, ONE_BAD_PRODUCT)

    errors = page.locator("#error-count").inner_text()
    expect(page.locator("#job-status")).to_have_text(f"Completed with {errors} errors")
    item = page.locator("#errors li", has_text="onerror")
    expect(item).to_have_count(1)
    assert XSS in item.inner_text()
    page.wait_for_timeout(500)  # time for a broken image to fire its onerror, were there one
    assert page.locator("#errors img").count() == 0
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    item.scroll_into_view_if_needed()
    screenshot(page, "browser-3-hostile-text")

    page.reload()  # the same job opened afresh (its errors rendered in one go)
    wait_finished(page, ONE_BAD_PRODUCT)
    expect(page.locator("#errors li", has_text="onerror")).to_have_count(1)
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_polling_stops_after_three_404s_with_a_message(page: Any, server: Server) -> None:
    polls: list[str] = []
    page.on("request", lambda r: "/api/backup/progress" in r.url and polls.append(r.url))
    page.goto(server.url + "/?job=nosuchjob0000")
    page.wait_for_url(re.compile(r"#/job/nosuchjob0000$"))

    message = page.locator("#job-message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("no job with the id nosuchjob0000")
    expect(message).to_contain_text("404 3 times")
    expect(message).to_contain_text("Stopped checking")
    assert len(polls) == 3
    page.wait_for_timeout(POLL_INTERVAL_MS * 6)
    assert len(polls) == 3, "the page kept polling after giving up"
    expect(page.locator("#cancel")).to_be_hidden()
    screenshot(page, "browser-4-unknown-job")


def backup_from_tab(page: Any, folder: Path) -> Path:
    """Start a backup job from the Backup tab, wait for its file, download it into `folder`."""
    page.click("#start-backup")
    expect(page.locator("#backup-file")).to_be_visible(timeout=FINISHED)
    with page.expect_download() as download:
        page.click("#backup-file")
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / download.value.suggested_filename
    download.value.save_as(saved)
    return saved


def test_downloaded_backup_restores_to_the_same_counts(page: Any, server: Server, data: Data) -> None:
    page.goto(server.url + "/#/backup")
    expect(page.locator("#table-picks li")).to_have_count(len(demo_metadata.tables))
    expect(page.locator("#leave-out-demo")).not_to_be_checked()
    expect(page.locator("#gzip")).to_be_checked()
    saved = backup_from_tab(page, data.root)
    assert saved.name.endswith(".json.gz")
    screenshot(page, "browser-5-backup-download")

    fresh = f"sqlite:///{data.root / 'from-download.db'}"
    rowvault.restore(fresh, saved)
    expected = table_counts(server.db_url)
    assert table_counts(fresh) == expected

    page.goto(server.url + "/#/backup")
    page.uncheck("#gzip")
    page.click("#pick-none")
    page.check("#table-picks input[value=users]")
    page.check("#table-picks input[value=audit_logs]")
    page.click("#add-limit")
    page.locator("#limits select").select_option("audit_logs")
    page.locator("#limits input").fill("10")
    part = backup_from_tab(page, data.root / "part")
    assert part.name.endswith(".json")
    partial = f"sqlite:///{data.root / 'from-partial.db'}"
    rowvault.restore(partial, part)
    assert table_counts(partial) == {"users": expected["users"], "audit_logs": 10}

    page.goto(server.url + "/#/backup")
    page.click("#pick-none")
    page.click("#start-backup")
    expect(page.locator("#backup-error")).to_contain_text("Tick at least one table")


def test_token_is_asked_for_once_then_sent_on_every_call(page: Any, data: Data, tmp_path: Path) -> None:
    db = tmp_path / "guarded.db"
    shutil.copy(data.small_db, db)
    with running_server(db, tmp_path / "home", token="s3cret-token") as guarded:
        calls: list[tuple[str, str | None]] = []
        page.on(
            "request", lambda r: "/api/" in r.url and calls.append((r.url, r.headers.get("authorization")))
        )
        page.goto(guarded.url + "/#/history")

        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        screenshot(page, "browser-6-token-prompt")
        page.fill("#token", "wrong")
        page.click("#token-submit")
        expect(page.locator("#token-error")).to_contain_text("did not accept")
        expect(dialog).to_be_visible()
        page.fill("#token", "s3cret-token")
        page.click("#token-submit")
        expect(dialog).to_be_hidden()
        expect(page.locator("#target-value")).to_contain_text("guarded.db")
        assert page.evaluate("sessionStorage.getItem('rowvault.token')") == "s3cret-token"

        progress_id = start_restore(page, guarded, data.small)
        wait_finished(page)
        assert summary_totals(page)[-1] == "0"
        page.click("a[data-tab=backup]")
        assert backup_from_tab(page, tmp_path).name.startswith("rowvault-backup-")

        page.click("a[data-tab=history]")
        expect(page.locator("#jobs li")).to_have_count(2)  # the backup, then the restore
        job = page.locator("#jobs li", has_text="Restore ·")
        expect(job).to_have_count(1)
        expect(job).to_contain_text("completed")
        expect(job).to_contain_text(f"{SMALL:,} / {SMALL:,} records")
        screenshot(page, "browser-6-token-accepted")
        job.locator("a").click()  # a job in the history opens its progress view
        expect(page.locator("#job-id")).to_have_text(progress_id)
        wait_finished(page)

        page.reload()  # kept for the tab: no second prompt
        expect(page.locator("#target-value")).to_contain_text("guarded.db")
        expect(dialog).to_be_hidden()

        answered = [auth for _, auth in calls if auth == "Bearer s3cret-token"]
        unauthenticated = [url for url, auth in calls if auth is None]
        assert len(answered) > 5
        # Only the very first calls went out before the token was known.
        assert all(("/api/config" in url or "/api/backup/jobs" in url) for url in unauthenticated)


@pytest.mark.slow
def test_cancel_then_resume_from_the_progress_view(page: Any, server: Server, data: Data) -> None:
    start_restore(page, server, data.big)
    page.wait_for_function(
        "Number(document.getElementById('overall-bar').getAttribute('aria-valuenow')) >= 5"
    )
    page.click("#cancel")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=FINISHED)
    expect(page.locator("#resume")).to_be_visible()
    expect(page.locator("#cancel")).to_be_hidden()
    stopped = int(page.locator("#processed").inner_text().replace(",", ""))
    assert 0 < stopped < BIG
    expect(page.locator("#job-message")).to_contain_text(f"Cancelled after {stopped:,} of 50,000 records")
    screenshot(page, "browser-7-cancelled")

    page.click("#resume")
    expect(page.locator("#job-status")).not_to_have_text(
        "cancelled"
    )  # the view was reset: not the old summary
    wait_finished(page)
    expect(page.locator("#processed")).to_have_text("50,000")
    expect(page.locator("#resume")).to_be_hidden()
    assert page.locator("#overall-bar").get_attribute("aria-valuenow") == "100"


def test_undo_puts_the_database_back(page: Any, data: Data, tmp_path: Path) -> None:
    db = tmp_path / "undo.db"
    shutil.copy(data.small_db, db)
    before = table_counts(f"sqlite:///{db}")
    with running_server(db, tmp_path / "home") as own:
        page.goto(own.url + "/#/restore")
        expect(page.locator("#snapshot")).to_be_checked()
        restore_id = start_restore(page, own, data.big)
        wait_finished(page)
        assert table_counts(f"sqlite:///{db}") != before
        expect(page.locator("#undo")).to_be_visible()
        page.click("#undo")
        expect(page.locator("#undo-dialog")).to_be_visible()
        page.click("#undo-confirm")
        page.wait_for_url(lambda url: "#/job/" in url and not url.endswith(restore_id))
        wait_finished(page)
        expect(page.locator("#job-title")).to_have_text("Undo completed")
        screenshot(page, "browser-8-undone")
        page.goto(own.url + f"/#/job/{restore_id}")
        expect(page.locator("#job-message")).to_contain_text("This restore was undone")
        expect(page.locator("#undo")).to_be_hidden()
    assert table_counts(f"sqlite:///{db}") == before
