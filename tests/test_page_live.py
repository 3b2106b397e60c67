"""The job view in Chromium against a real `rowvault serve`: progress followed over the event
stream (polling when the stream fails), every stage of a restore named, a restore with record
errors told apart from a clean one, the file and database named, and a 1,000,000-record restore
followed live at the default polling period. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import itertools
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import rowvault
from rowvault.demo import build_demo
from rowvault.progress import PHASES

from .backupfiles import read_backup, write_backup
from .browser_support import (
    BAR_RECORDER,
    IN_CI,
    PHASE_RECORDER,
    PHONE,
    POLL_INTERVAL_MS,
    Server,
    bar_is_full,
    chromium,
    open_page,
    require_chromium,
    running_server,
    screenshot,
)
from .server import running_server as serve_with

try:
    from playwright import sync_api
except ImportError:
    if IN_CI:
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)
expect = sync_api.expect

BIG = 50_000
SMALL = 2_000
MILLION = 1_000_000
FINISHED = 120_000  # ms a restore may take in the page
LONG_DB_NAME = "restore-target-with-a-name-far-too-long-for-a-phone-screen.db"


@dataclass
class Data:
    root: Path
    big: Path
    big_db: Path
    small: Path
    small_db: Path


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    require_chromium()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("live")
    for name, count in (("big", BIG), ("small", SMALL)):
        build_demo(f"sqlite:///{root / f'{name}.db'}", count)
        rowvault.backup(f"sqlite:///{root / f'{name}.db'}", root / f"{name}.json.gz")
    return Data(root, root / "big.json.gz", root / "big.db", root / "small.json.gz", root / "small.db")


@pytest.fixture(scope="session")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup of a 1,000,000-record demo database, built once per session."""
    root = tmp_path_factory.mktemp("million")
    build_demo(f"sqlite:///{root / 'million.db'}", MILLION)
    rowvault.backup(f"sqlite:///{root / 'million.db'}", root / "million.json.gz")
    (root / "million.db").unlink()
    return root / "million.json.gz"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with open_page(browser, init_script=BAR_RECORDER + PHASE_RECORDER) as tab:
        yield tab


def served_copy(source: Path, tmp_path: Path, name: str = "served.db") -> Path:
    db = tmp_path / name
    shutil.copy(source, db)
    return db


def start_restore(page: Any, server: Server, backup: Path, *, mode: str = "upsert") -> str:
    page.goto(server.url + "/#/restore")
    page.set_input_files("#file", str(backup))
    page.select_option("#mode", mode)
    page.click("#start")
    if mode == "replace":
        page.click("#replace-confirm")
    page.wait_for_url(re.compile(r"#/job/[0-9a-f]+$"), timeout=FINISHED)
    return str(page.url.rsplit("/", 1)[1])


def wait_finished(page: Any, badge: str = "completed") -> None:
    expect(page.locator("#summary")).to_be_visible(timeout=FINISHED)
    expect(page.locator("#job-status")).to_have_text(badge)


def progress_requests(page: Any) -> list[tuple[float, str]]:
    seen: list[tuple[float, str]] = []
    page.on("request", lambda r: "/api/backup/progress" in r.url and seen.append((time.monotonic(), r.url)))
    return seen


def css_color(page: Any, value: str) -> str:
    """A CSS colour (or var()) as the browser computes it, to compare with computed styles."""
    return str(
        page.evaluate(
            """(value) => { const probe = document.createElement("i"); probe.style.color = value;
            document.body.append(probe); const color = getComputedStyle(probe).color; probe.remove();
            return color; }""",
            value,
        )
    )


def fits(page: Any, selector: str) -> bool:
    """The element's whole text shows, no ellipsis."""
    return bool(page.locator(selector).evaluate("(n) => n.scrollWidth <= n.clientWidth + 1"))


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_page_follows_the_stream_and_names_every_stage(page: Any, data: Data, tmp_path: Path) -> None:
    """Upserting 50,000 records into a database that holds them: a real safety snapshot first."""
    db = served_copy(data.big_db, tmp_path)
    with running_server(db, tmp_path / "home") as server:
        requests = progress_requests(page)
        start_restore(page, server, data.big)
        expect(page.locator("#job-file")).to_have_text("big.json.gz")
        expect(page.locator("#job-target")).to_contain_text("served.db")
        expect(page.locator("#panel-job")).to_have_attribute("data-source", "stream")
        page.wait_for_function(
            "(label) => window.__phases.some((p) => p.startsWith(label))", arg=PHASES["snapshot"]
        )
        screenshot(page, "live-1-stream-snapshot")  # most often still in the snapshot
        expect(page.locator("#phase")).to_contain_text(PHASES["data"], timeout=FINISHED)
        expect(page.locator("#record-id")).to_have_text(re.compile(r"^[a-z_]+:\S+$"))
        screenshot(page, "live-1-stream-running")
        page.set_viewport_size(PHONE)
        screenshot(page, "live-1-stream-running-phone", full_page=True)
        wait_finished(page)

        phases = page.evaluate("window.__phases")
        assert any(p.startswith(PHASES["snapshot"]) for p in phases), phases
        assert any(PHASES["data"] in p for p in phases), phases
        assert [url for _, url in requests if "/stream?" not in url] == [], "the page polled"
        expect(page.locator("#phase")).to_be_hidden()

        page.click("a[data-tab=history]")
        job = page.locator("#jobs li").first
        expect(job).to_contain_text("big.json.gz → ")
        expect(job).to_contain_text("served.db")
        screenshot(page, "live-1-history-phone")


@pytest.mark.parametrize("failure", ["refused", "ends-early"])
@pytest.mark.slow
def test_page_polls_at_the_interval_when_the_stream_fails(
    page: Any, data: Data, tmp_path: Path, failure: str
) -> None:
    def broken(route: Any) -> None:
        if failure == "refused":
            route.abort("connectionrefused")
        else:  # answers, then closes before the job has finished
            route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=": hello\n\n")

    page.route(re.compile(r"/api/backup/progress/stream"), broken)
    db = served_copy(data.small_db, tmp_path)
    with running_server(db, tmp_path / "home") as server:
        requests = progress_requests(page)
        start_restore(page, server, data.big, mode="replace")
        wait_finished(page)
    expect(page.locator("#panel-job")).to_have_attribute("data-source", "polling")
    polls = [at * 1000 for at, url in requests if "/progress?" in url]
    gaps = sorted(b - a for a, b in itertools.pairwise(polls))
    assert len(polls) >= 3, requests
    assert POLL_INTERVAL_MS * 0.9 <= gaps[len(gaps) // 2] < POLL_INTERVAL_MS * 5, gaps
    intermediate = [v for v in page.evaluate("window.__bars.overall") if 0 < v < 100]
    assert len(set(intermediate)) >= 2 and intermediate == sorted(intermediate)
    expect(page.locator("#percent")).to_have_text("100%")


def test_a_restore_with_record_errors_says_so_in_its_own_colour(
    page: Any, data: Data, tmp_path: Path
) -> None:
    metadata, tables = read_backup(data.small)
    for i in range(5):
        tables["audit_logs"][i * 7]["created_at"] = "yesterday"
    bad = write_backup(tmp_path / "five-bad.json.gz", metadata, tables)
    db = served_copy(data.small_db, tmp_path)
    with running_server(db, tmp_path / "home") as server:
        start_restore(page, server, bad, mode="replace")
        wait_finished(page, "Completed with 5 errors")
        badge = page.locator("#job-status")
        fill = page.locator("#overall-bar .bar-fill")
        expect(page.locator("#job-title")).to_have_text("Restore completed with errors")
        assert page.locator("#summary-foot td").all_text_contents()[-1] == "5"
        expect(page.locator("#error-count")).to_have_text("5")
        expect(page.locator("#summary-lead")).to_contain_text("5 failed")
        colours = {
            "badge": badge.evaluate("(n) => getComputedStyle(n).color"),
            "fill": fill.evaluate("(n) => getComputedStyle(n).backgroundColor"),
        }
        for name in ("--ok", "--bad", "--accent"):
            assert css_color(page, f"var({name})") not in colours.values(), (name, colours)
        assert badge.evaluate("(n) => getComputedStyle(n).textTransform") == "none"
        assert bar_is_full(page, "overall-bar")
        screenshot(page, "live-2-completed-with-errors")

        page.click("a[data-tab=history]")
        item = page.locator("#jobs li").first
        expect(item.locator(".badge")).to_have_text("Completed with 5 errors")
        expect(item).to_contain_text("five-bad.json.gz → ")
        screenshot(page, "live-2-history")
        page.set_viewport_size(PHONE)
        screenshot(page, "live-2-history-phone")

        start_restore(page, server, data.small)  # clean: the plain green "completed"
        wait_finished(page)
        green = fill.evaluate("(n) => getComputedStyle(n).backgroundColor")
        assert green == css_color(page, "var(--ok)") and green != colours["fill"]


@pytest.mark.slow
def test_a_million_records_move_the_bar_live_at_the_default_interval(
    page: Any, million: Path, tmp_path: Path
) -> None:
    db = tmp_path / LONG_DB_NAME
    with serve_with(db, tmp_path / "home") as server:  # RESTORE_POLL_INTERVAL left at its default
        config = server.client().get("/api/config").json()
        assert config["pollInterval"] == 2000
        requests = progress_requests(page)
        start_restore(page, server, million)
        expect(page.locator("#panel-job")).to_have_attribute("data-source", "stream")
        page.wait_for_function(
            "Number(document.getElementById('overall-bar').getAttribute('aria-valuenow')) >= 30",
            timeout=FINISHED,
        )
        screenshot(page, "live-3-million-running")
        wait_finished(page)

        values = page.evaluate("window.__bars.overall")
        shown = sorted({v for v in values if 0 < v < 100})
        assert len(shown) >= 10, f"the bar showed only {shown}"
        assert values[-1] == 100
        expect(page.locator("#percent")).to_have_text("100%")
        expect(page.locator("#processed")).to_have_text("1,000,000")
        assert bar_is_full(page, "overall-bar")
        assert [url for _, url in requests if "/stream?" not in url] == [], "the page polled"
        assert page.locator("#summary-foot td").all_text_contents()[:2] == ["Total", "1,000,000"]
        screenshot(page, "live-3-million-finished")

        page.set_viewport_size(PHONE)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        target = page.locator("#target-value")
        assert not fits(page, "#target-value"), "the test's database name should not fit at 375 px"
        expect(target).to_have_attribute("title", re.compile(re.escape(LONG_DB_NAME) + "$"))
        totals = page.locator("#summary-foot .truncate")
        assert totals.all_text_contents() == ["Total", "1,000,000", "0", "0", "0"]
        for i in range(totals.count()):
            assert fits(page, f"#summary-foot .truncate >> nth={i}"), totals.nth(i).text_content()
            assert totals.nth(i).get_attribute("title").endswith(totals.nth(i).text_content())
        page.locator("#summary").scroll_into_view_if_needed()
        screenshot(page, "live-3-million-finished-phone")
        target.focus()  # the full name, wrapped, on focus
        assert fits(page, "#target-value")
        screenshot(page, "live-3-database-focused-phone")
