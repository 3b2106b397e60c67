"""Other web sites cannot drive the server (issue 7, item 3): forged cross-site requests and
DNS rebinding are refused, in the project's error shape; the page's own calls still work."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

import rowvault
from rowvault.demo import build_demo
from rowvault.settings import load_settings
from rowvault.web import Service, build_router, create_app, install_error_handlers
from rowvault.web.security import allowed_hosts, host_allowed

from ..backupfiles import read_backup
from ..browser_support import CHROMIUM, CHROMIUM_ARGS, require_chromium
from ..dbdump import dump
from ..server import free_port, poll_until_finished, running_server

EVIL = "http://evil.example"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    db = tmp_path / "target.db"
    build_demo(str(db), 300)
    return db


def changed_user(db: Path, tmp_path: Path) -> tuple[int, bytes]:
    """A valid backup (generic JSON) that renames the first user: (user id, the body)."""
    rowvault.backup(str(db), tmp_path / "current.json.gz")
    _, tables = read_backup(tmp_path / "current.json.gz")
    user = {**tables["users"][0], "name": "Mallory was here"}
    return int(user["id"]), orjson.dumps({"users": [user]})


def user_name(db: Path, user_id: int) -> str:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT name FROM users WHERE id = ?", (user_id,)).scalar_one())
    finally:
        engine.dispose()


# -- the rules, over create_app ----------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(DATABASE_URL=str(tmp_path / "t.db"), jobs="thread", home=tmp_path / "home")
    app = create_app(settings, host="127.0.0.1", port=8000)
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client


REFUSED_POSTS = {
    "no content type": {},
    "text/plain": {"content-type": "text/plain"},
    "form": {"content-type": "application/x-www-form-urlencoded"},
    "multipart": {"content-type": "multipart/form-data; boundary=x"},
    "two types, read as text/plain": {"content-type": "application/json, text/plain"},
    "Basic credentials only": {"authorization": "Basic dXNlcjpwYXNz"},
    "another origin": {"content-type": "application/json", "origin": EVIL},
    "the null origin": {"content-type": "application/json", "origin": "null"},
    "another port": {"content-type": "application/json", "origin": "http://127.0.0.1:3000"},
    "cross-site fetch": {"content-type": "application/json", "sec-fetch-site": "cross-site"},
    "same-site, no origin": {"content-type": "application/json", "sec-fetch-site": "same-site"},
}
ACCEPTED_POSTS = {
    "json": {"content-type": "application/json"},
    "json with charset": {"content-type": "application/json; charset=utf-8"},
    "gzip": {"content-type": "application/gzip"},
    "x-gzip": {"content-type": "application/x-gzip"},
    "octet-stream": {"content-type": "application/octet-stream"},
    "custom header": {"x-rowvault": "1"},
    "multipart with the header": {"content-type": "multipart/form-data; boundary=x", "x-rowvault": "1"},
    "own origin": {"content-type": "application/json", "origin": "http://127.0.0.1:8000"},
    "same-origin fetch": {"x-rowvault": "1", "sec-fetch-site": "same-origin"},
}


@pytest.mark.parametrize("headers", REFUSED_POSTS.values(), ids=REFUSED_POSTS.keys())
def test_a_post_another_site_could_send_is_403(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.post("/api/backup/cancel", params={"id": "some-job"}, headers=headers)
    assert answer.status_code == 403, answer.text
    assert set(answer.json()) == {"error", "detail"}


@pytest.mark.parametrize("headers", ACCEPTED_POSTS.values(), ids=ACCEPTED_POSTS.keys())
def test_a_post_only_the_page_can_send_gets_through(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.post("/api/backup/cancel", params={"id": "some-job"}, headers=headers)
    assert answer.status_code == 404, answer.text  # past the guard: no such job


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1:9999", "127.0.0.1.evil.example:8000", ""]
)
def test_a_request_for_another_host_name_is_400(client: TestClient, host: str) -> None:
    for path in ("/healthz", "/api/config", "/"):
        answer = client.get(path, headers={"host": host})
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"] == "bad_host"


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST:8000"])
def test_the_servers_own_names_are_answered(client: TestClient, host: str) -> None:
    assert client.get("/api/config", headers={"host": host}).status_code == 200


def test_reading_is_allowed_from_any_origin_but_not_readable_there(client: TestClient) -> None:
    """A GET changes nothing; without CORS headers another site cannot read the answer."""
    answer = client.get("/api/config", headers={"origin": EVIL, "sec-fetch-site": "cross-site"})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_a_mounted_router_refuses_forgeable_posts_by_itself(tmp_path: Path) -> None:
    settings = load_settings(DATABASE_URL=str(tmp_path / "t.db"), jobs="thread", home=tmp_path / "home")
    service = Service(settings)
    host = FastAPI()
    host.include_router(build_router(service))
    install_error_handlers(host)
    service.start()
    try:
        with TestClient(host) as test_client:
            forged = test_client.post("/api/backup", content=b"{}", headers={"content-type": "text/plain"})
            cancel = test_client.post("/api/backup/cancel", params={"id": "x"}, headers={"x-rowvault": "1"})
    finally:
        service.stop()
    assert forged.status_code == 403 and "X-Rowvault" in forged.json()["detail"]
    assert cancel.status_code == 404


def test_allowed_hosts_are_the_setting_when_it_is_given(tmp_path: Path) -> None:
    settings = load_settings(
        DATABASE_URL=str(tmp_path / "t.db"),
        jobs="thread",
        home=tmp_path / "home",
        ROWVAULT_ALLOWED_HOSTS="rowvault.example.com, *.internal.example",
    )
    app = create_app(settings, host="127.0.0.1", port=8000)
    with TestClient(app, base_url="https://rowvault.example.com") as test_client:
        proxied = test_client.get("/api/config")
        sub = test_client.get("/api/config", headers={"host": "a.internal.example:8443"})
        loopback = test_client.get("/api/config", headers={"host": "127.0.0.1:8000"})
        own = test_client.post(
            "/api/backup/cancel",
            params={"id": "x"},
            headers={"content-type": "application/json", "origin": "https://rowvault.example.com"},
        )
    assert proxied.status_code == sub.status_code == 200
    assert loopback.status_code == 400, "the setting replaces the defaults"
    assert own.status_code == 404


def test_a_wrong_allowed_hosts_entry_fails_at_start(tmp_path: Path) -> None:
    settings = load_settings(
        DATABASE_URL=str(tmp_path / "t.db"), ROWVAULT_ALLOWED_HOSTS="good.example,bad:port"
    )
    with pytest.raises(rowvault.RowvaultError, match="ROWVAULT_ALLOWED_HOSTS"):
        create_app(settings)


# -- against a real `rowvault serve` -----------------------------------------------------------


def test_a_forged_cross_site_post_of_a_valid_backup_changes_nothing(target: Path, tmp_path: Path) -> None:
    user_id, body = changed_user(target, tmp_path)
    before = dump(f"sqlite:///{target}")
    with running_server(target, tmp_path / "home") as server:
        forged = httpx.post(
            server.url + "/api/backup",
            params={"wait": "true"},
            content=body,
            headers={"content-type": "text/plain", "origin": EVIL, "sec-fetch-site": "cross-site"},
        )
        no_origin = httpx.post(
            server.url + "/api/backup",
            params={"wait": "true"},
            content=body,
            headers={"content-type": "text/plain"},
        )
        with server.client() as client:
            jobs = client.get("/api/backup/jobs").json()["jobs"]
        log = server.log.read_text()

    assert forged.status_code == 403, forged.text
    assert forged.json()["error"] == "cross_site"
    assert no_origin.status_code == 403, no_origin.text
    assert "X-Rowvault" in no_origin.json()["detail"]
    assert dump(f"sqlite:///{target}") == before
    assert user_name(target, user_id) != "Mallory was here"
    assert jobs == []
    port = server.url.rsplit(":", 1)[1]
    assert f"host names 127.0.0.1:{port}, localhost:{port}, [::1]:{port}" in log, "serve names them"


def test_a_rebound_host_name_is_refused(target: Path, tmp_path: Path) -> None:
    """DNS rebinding: for the browser, evil.example is the page's own origin."""
    user_id, body = changed_user(target, tmp_path)
    with running_server(target, tmp_path / "home") as server:
        port = server.url.rsplit(":", 1)[1]
        rebound = {"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}"}
        read = httpx.get(server.url + "/api/backup/jobs", headers=rebound)
        health = httpx.get(server.url + "/healthz", headers=rebound)
        write = httpx.post(
            server.url + "/api/backup",
            content=body,
            headers={**rebound, "content-type": "application/json", "x-rowvault": "1"},
        )
    assert read.status_code == health.status_code == write.status_code == 400
    assert read.json() == {
        "error": "bad_host",
        "detail": "the Host header is not a name of this server; set ROWVAULT_ALLOWED_HOSTS",
    }
    assert user_name(target, user_id) != "Mallory was here"


def test_the_pages_own_json_post_still_works(target: Path, tmp_path: Path) -> None:
    """The original front end: same-origin fetch, Content-Type: application/json, no custom header."""
    user_id, body = changed_user(target, tmp_path)
    with running_server(target, tmp_path / "home") as server:
        own = {"origin": server.url, "sec-fetch-site": "same-origin", "content-type": "application/json"}
        document = b'{"backupData": ' + body + b"}"
        started = httpx.post(server.url + "/api/backup", content=document, headers=own)
        assert started.status_code == 202, started.text
        with httpx.Client(base_url=server.url) as client:  # polling is a GET: no header needed
            records = poll_until_finished(client, started.json()["progressId"])
    assert records[-1]["status"] == "completed", records[-1]
    assert user_name(target, user_id) == "Mallory was here"


def test_a_proxy_name_is_answered_with_rowvault_allowed_hosts(target: Path, tmp_path: Path) -> None:
    env = {"ROWVAULT_ALLOWED_HOSTS": "rowvault.example.com,127.0.0.1"}
    with running_server(target, tmp_path / "home", env=env) as server:
        proxied = httpx.get(server.url + "/api/config", headers={"host": "rowvault.example.com"})
        other = httpx.get(server.url + "/api/config", headers={"host": "localhost"})
        log = server.log.read_text()
    assert proxied.status_code == 200
    assert other.status_code == 400
    assert "rowvault.example.com, 127.0.0.1" in log


# -- the attack in a real browser ----------------------------------------------------------------

EVIL_PAGE = """<!doctype html><title>cats</title><script>
(async () => {
  const victim = "%(victim)s/api/backup?wait=true";
  const body = %(body)s;
  const tries = [
    () => fetch(victim, {method: "POST", mode: "no-cors", body, headers: {"Content-Type": "text/plain"}}),
    () => { const form = new FormData(); form.append("file", new Blob([body]), "b.json");
            return fetch(victim, {method: "POST", mode: "no-cors", body: form}); },
    () => fetch(victim, {method: "POST", mode: "no-cors", body: new Blob([body])}),
  ];
  for (const attempt of tries) { try { await attempt(); } catch (e) {} }
  window.__done = true;
})();
</script>"""


@pytest.fixture
def evil_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Another origin (localhost on another port, so another site than 127.0.0.1)."""
    root = tmp_path / "evil"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_page_on_another_site_cannot_restore_through_chromium(
    target: Path, tmp_path: Path, evil_site: tuple[str, Path]
) -> None:
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    user_id, body = changed_user(target, tmp_path)
    before = dump(f"sqlite:///{target}")
    evil_url, root = evil_site
    with running_server(target, tmp_path / "home") as server:
        page_text = EVIL_PAGE % {"victim": server.url, "body": orjson.dumps(body.decode()).decode()}
        (root / "index.html").write_text(page_text)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page()
                page.goto(evil_url + "/index.html")
                page.wait_for_function("window.__done === true", timeout=60_000)
            finally:
                browser.close()
        time.sleep(0.5)
        with server.client() as client:
            jobs = client.get("/api/backup/jobs").json()["jobs"]
        log = server.log.read_text()

    assert jobs == [], "no forged request started a restore"
    assert dump(f"sqlite:///{target}") == before
    assert user_name(target, user_id) != "Mallory was here"
    assert log.count("refused POST /api/backup") == 3, log


def test_a_host_without_a_port_is_the_default_port() -> None:
    allowed = allowed_hosts(load_settings(), "127.0.0.1", 80)
    assert host_allowed("localhost", allowed) and host_allowed("localhost:80", allowed)
    assert not host_allowed("localhost:8080", allowed)
    assert not host_allowed("localhost", allowed_hosts(load_settings(), "127.0.0.1", 8000))
