"""What the browser tests need around Playwright: Debian's Chromium, a real `rowvault serve`
subprocess with its own environment, screenshots, and table counts to compare databases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    db_url: str
    process: subprocess.Popen[bytes]
    log: Path


def _environment(home: Path, token: str | None) -> dict[str, str]:
    """The parent's environment without any rowvault setting, then exactly the test's."""
    ours = ("ROWVAULT_", "RESTORE_", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(SERVER_ENV, ROWVAULT_HOME=str(home), PYTHONUNBUFFERED="1")
    if token:
        env["ROWVAULT_TOKEN"] = token
    return env


@contextmanager
def running_server(db: Path, home: Path, *, token: str | None = None) -> Iterator[Server]:
    """`python -m rowvault.cli serve` on a free loopback port until the block ends."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rowvault.cli", "serve", "--db", str(db), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(home, token),
        )
    server = Server(f"http://127.0.0.1:{port}", f"sqlite:///{db}", process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_until_up(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.log.read_text()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not come up:\n{server.log.read_text()}")


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
