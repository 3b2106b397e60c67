"""The HTTP API against its own OpenAPI schema (issue 9, item 5): schemathesis drives a live
`rowvault serve` - without a token, with one, and with one but unauthenticated - and every
answer must be no 5xx, a declared status code, a declared content type and a body that fits
the declared schema (tests/test_api.py holds what the answers say). Bounded: deterministic
generation, 25 examples per operation plus the coverage phase's cases, no example database;
the event stream is read for at most 10 s or 50 events, and `wait=true` restores are of tiny
generated bodies, under the same 10 s request timeout. Generated ids are now and then swapped
for a real finished job's, so the routes answer 200 as well as 404."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import rowvault
from rowvault.demo import build_demo
from rowvault.settings import load_settings
from rowvault.web import create_app

from .backupfiles import read_backup, write_backup
from .server import Server, running_server

TOKEN = "schema-test-token"
RECORDS = 300
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Api:
    """One way of calling one server: the headers sent, and a finished job that exists on it."""

    name: str
    server: Server
    headers: dict[str, str]
    known_job: str


def _finished_job_with_rejects(server: Server, source: Path, folder: Path) -> str:
    """A restore (with a safety snapshot) that rejected one record: its rejects, errors and
    undo routes have something to answer with."""
    _, tables = read_backup(source)
    tables["business_products"][0]["price"] = "abc"
    spoiled = write_backup(folder / "spoiled.json.gz", None, tables)
    with server.client() as client:
        answer = client.post(
            "/api/backup",
            params={"wait": "true", "snapshot": "true"},
            content=spoiled.read_bytes(),
            headers={"content-type": "application/gzip"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["errors"], "the spoiled record was rejected"
    return str(answer.json()["progressId"])


@pytest.fixture(scope="module")
def backup_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("schema-source")
    build_demo(folder / "source.db", RECORDS)
    rowvault.backup(folder / "source.db", folder / "backup.json.gz")
    return folder / "backup.json.gz"


def _serve(
    tmp_path_factory: pytest.TempPathFactory, backup_file: Path, token: str | None
) -> Iterator[tuple[Server, str]]:
    folder = tmp_path_factory.mktemp("schema-server")
    build_demo(folder / "target.db", RECORDS)
    with running_server(folder / "target.db", folder / "home", token=token) as server:
        yield server, _finished_job_with_rejects(server, backup_file, folder)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory, backup_file: Path) -> Iterator[tuple[Server, str]]:
    yield from _serve(tmp_path_factory, backup_file, None)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory, backup_file: Path) -> Iterator[tuple[Server, str]]:
    yield from _serve(tmp_path_factory, backup_file, TOKEN)


@pytest.fixture(scope="module", params=["open", "token", "anonymous"])
def api(request: pytest.FixtureRequest) -> Api:
    """`open`: a server without a token; `token`: one with ROWVAULT_TOKEN, called with it;
    `anonymous`: that server called without it. Every call sends the page's X-Rowvault."""
    name = str(request.param)
    server, job = request.getfixturevalue("open_server" if name == "open" else "token_server")
    headers = {"X-Rowvault": "1"}
    if name == "token":
        headers["Authorization"] = f"Bearer {TOKEN}"
    return Api(name, server, headers, job)


def served_schema() -> dict[str, Any]:
    """The OpenAPI document `rowvault serve` serves (the same app; compared with the live one
    below), loaded at import so that pytest gets one test per operation."""
    settings = load_settings(DATABASE_URL="sqlite://", home=Path("unused"))
    return create_app(settings, host="127.0.0.1", port=8000).openapi()


KNOWN_JOB = "0" * 32
"""Stands for a job that exists on the server: the test swaps in the real id."""
config = schemathesis.Config.from_dict(
    {
        "seed": 20261209,
        "request-timeout": 10,
        "max-stream-events": 50,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "deterministic": True},
    }
)
schema = schemathesis.openapi.from_dict(served_schema(), config=config)


@schemathesis.serializer("application/gzip")
def gzip_body(context: Any, value: Any) -> bytes:
    """A generated binary body, gzipped: what a raw gzip upload sends."""
    return gzip.compress(value if isinstance(value, bytes) else str(value).encode())


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any]) -> Any:
    if query and "id" in query:
        return st.sampled_from([query, {**query, "id": KNOWN_JOB}])
    return st.just(query)


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    if isinstance(body, dict) and "url" in body:  # POST /api/downloads: sometimes a real download
        return st.sampled_from([body, {"url": "/api/backup?gzip=true"}])
    return st.just(body)


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    if path_parameters and "job_id" in path_parameters:
        return st.sampled_from([path_parameters, {"job_id": KNOWN_JOB}])
    return st.just(path_parameters)


@schema.parametrize()
def test_every_answer_fits_the_schema(case: Any, api: Api) -> None:
    if case.query and case.query.get("id") == KNOWN_JOB:
        case.query["id"] = api.known_job
    if case.path_parameters and case.path_parameters.get("job_id") == KNOWN_JOB:
        case.path_parameters["job_id"] = api.known_job
    response = case.call_and_validate(base_url=api.server.url, headers=api.headers, checks=CHECKS)
    its_method = case.method.upper() == case.operation.method.upper()  # not a probe for 405
    if api.name == "anonymous" and case.path != "/healthz" and its_method:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"


# -- what the runs above found, one focused test each -----------------------------------------


def test_a_malformed_multipart_upload_is_a_400_and_leaves_the_database_free(
    open_server: tuple[Server, str], backup_file: Path
) -> None:
    """Found by schemathesis: a multipart body the parser cannot read was a 500."""
    server, _ = open_server
    with server.client() as client:
        answer = client.post(
            "/api/backup",
            content=b"--b\r\nNone--b--\r\n",
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "bad_request"
        assert "multipart" in answer.json()["detail"]
        after = client.post(
            "/api/backup",
            params={"wait": "true", "dryRun": "true"},
            content=backup_file.read_bytes(),
            headers={"content-type": "application/gzip"},
        )
    assert after.status_code == 200, after.text


def test_without_the_token_a_bad_body_is_401(token_server: tuple[Server, str]) -> None:
    server, _ = token_server
    answer = httpx.post(
        server.url + "/api/downloads",
        content=b"{",
        headers={"content-type": "application/json", "X-Rowvault": "1"},
    )
    assert answer.status_code == 401, answer.text


def test_an_upload_over_the_limit_is_a_declared_413_and_leaves_no_lock(tmp_path: Path) -> None:
    build_demo(tmp_path / "target.db", 50)
    limit = {"ROWVAULT_MAX_UPLOAD_MB": "1"}
    with running_server(tmp_path / "target.db", tmp_path / "home", env=limit) as server:
        case = schema["/api/backup"]["POST"].Case(
            media_type="application/octet-stream", body=b"x" * (3 << 20), headers={"X-Rowvault": "1"}
        )
        refused = case.call(base_url=server.url)
        case.validate_response(refused, checks=CHECKS)
    assert refused.status_code == 413, refused.text
    assert "ROWVAULT_MAX_UPLOAD_MB" in refused.json()["detail"]
    state = sa.create_engine(f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    with state.connect() as conn:
        assert conn.exec_driver_sql("SELECT * FROM rowvault_locks").fetchall() == []
    state.dispose()


def test_the_schema_tested_is_the_one_served_even_behind_a_token(token_server: tuple[Server, str]) -> None:
    server, _ = token_server
    answer = httpx.get(server.url + "/openapi.json")
    assert answer.status_code == 200
    assert answer.json() == served_schema()
