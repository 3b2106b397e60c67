"""What the browser tests need around Playwright: Debian's Chromium, a real `rowvault serve`
subprocess with its own environment, screenshots, and table counts to compare databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from .server import Server
from .server import running_server as serve

IN_CI = bool(os.environ.get("CI"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
POLL_INTERVAL_MS = 200
SERVER_ENV = {
    "RESTORE_POLL_INTERVAL": str(POLL_INTERVAL_MS),
    "RESTORE_BATCH_SIZE": "500",
    # A short pause between batches keeps a 50,000-record restore running for a few seconds,
    # so the page (polling every 200 ms) sees it move; without it SQLite is done in about one.
    "RESTORE_BATCH_DELAY_MS": "20",
}


def require_chromium() -> None:
    """Skip (fail in CI) when Debian's Chromium is not installed."""
    if CHROMIUM.exists():
        return
    message = f"Chromium is missing at {CHROMIUM} (apt-get install chromium); the browser tests need it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def running_server(db: Path, home: Path, *, token: str | None = None) -> Iterator[Server]:
    """A real `rowvault serve` with the page's polling period and small batches."""
    with serve(db, home, token=token, env=SERVER_ENV) as server:
        yield server


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save tests/artifacts/<name>.png (transitions finished, so bars show their value)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


def table_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        with engine.connect() as conn:
            metadata.reflect(bind=conn)
            return {
                name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


# Records every value the page gives a progress bar, as it happens (not sampled by the test).
BAR_RECORDER = """
window.__bars = {overall: [], upload: []};
document.addEventListener("DOMContentLoaded", () => {
  for (const [id, key] of [["overall-bar", "overall"], ["upload-bar", "upload"]]) {
    const node = document.getElementById(id);
    if (!node) continue;
    new MutationObserver(() => window.__bars[key].push(Number(node.getAttribute("aria-valuenow"))))
      .observe(node, {attributes: true, attributeFilter: ["aria-valuenow"]});
  }
});
"""


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(browser: Any, *, init_script: str = BAR_RECORDER) -> Iterator[Any]:
    """A fresh tab (own sessionStorage) that fails the test on any uncaught script error."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.add_init_script(init_script)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    script_errors: list[str] = []
    tab.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert not script_errors, f"the page raised: {script_errors}"


# Records every text the page gives the phase line and the waiting label, as it happens.
PHASE_RECORDER = """
window.__phases = [];
document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["phase", "overall-waiting"]) {
    const node = document.getElementById(id);
    if (!node) continue;
    const record = () => { if (!node.hidden && node.textContent) window.__phases.push(node.textContent); };
    new MutationObserver(record)
      .observe(node, {childList: true, characterData: true, subtree: true, attributes: true});
  }
});
"""


def bar_is_full(page: Any, bar: str, *, timeout_ms: int = 3000) -> bool:
    """Whether the bar's fill spans its whole track, once its width transition (0.25 s) has
    run: waits for it up to `timeout_ms`, as a person's eye would."""
    try:
        page.wait_for_function(
            """(id) => { const bar = document.getElementById(id);
            const fill = bar.querySelector(".bar-fill").getBoundingClientRect().width;
            return Math.abs(fill - bar.getBoundingClientRect().width) < 0.5; }""",
            arg=bar,
            timeout=timeout_ms,
        )
    except Exception:  # playwright's TimeoutError
        return False
    return True
