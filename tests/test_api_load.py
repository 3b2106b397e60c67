"""The API under load (issue 9, item 5): 50 concurrent pollers and 10 concurrent uploads
against 2 databases. Every upload is answered as documented (202, 409 while another restore
holds that database, 413 past ROWVAULT_MAX_UPLOAD_MB), every started job completes, no poller
sees a 5xx or a malformed progress record, and afterwards no lock is left behind.

A `rowvault serve` restores into one database (its DATABASE_URL), so the two databases get two
servers (in-process worker mode, the default) sharing one ROWVAULT_HOME: one state store,
one lock table, one uploads folder - as two API processes of one deployment would. Pollers ask
either server about any job."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import rowvault
from rowvault.demo import build_demo

from .dbdump import counts
from .server import Server, running_server

RECORDS = 20_000
POLLERS = 50
UPLOADS_PER_DATABASE = 5
LIMIT_MB = 2
ENV = {
    "RESTORE_BATCH_SIZE": "1000",  # 20 batches a restore, 20 ms apart: restores overlap uploads
    "RESTORE_BATCH_DELAY_MS": "20",
    "ROWVAULT_MAX_UPLOAD_MB": str(LIMIT_MB),
}
STATUSES = {"queued", "running", "completed", "error", "cancelled", "interrupted"}
FINISHED = {"completed", "error", "cancelled", "interrupted"}
PROGRESS_KEYS = {"id", "model", "processed", "total", "counts", "errors", "errorCount", "status"}
PROGRESS_KEYS |= {"startedAt", "updatedAt", "finishedAt"}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the demo database, its backup)."""
    folder = tmp_path_factory.mktemp("load-source")
    build_demo(folder / "source.db", RECORDS)
    rowvault.backup(folder / "source.db", folder / "backup.json.gz")
    return folder / "source.db", folder / "backup.json.gz"


@dataclass
class Seen:
    """What the pollers saw, shared between their threads."""

    jobs: list[str] = field(default_factory=list)
    answers: int = 0
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def progress_problems(record: Any) -> list[str]:
    """What is wrong with a progress record P (DESIGN.md §3), if anything."""
    if not isinstance(record, dict):
        return [f"not an object: {record!r}"]
    problems = [f"no {key}" for key in PROGRESS_KEYS - set(record)]
    if problems:
        return problems
    if record["status"] not in STATUSES:
        problems.append(f"status {record['status']!r}")
    numbers = [record["processed"], record["total"], record["errorCount"]]
    if not all(isinstance(n, int) and n >= 0 for n in numbers):
        problems.append(f"counts not whole numbers: {numbers}")
    elif record["processed"] > record["total"] > 0:
        problems.append(f"processed {record['processed']} > total {record['total']}")
    tables = record["counts"]
    if not isinstance(tables, dict) or not all({"processed", "total"} <= set(c) for c in tables.values()):
        problems.append(f"counts {tables!r}")
    if not isinstance(record["errors"], list):
        problems.append(f"errors {record['errors']!r}")
    if record["status"] == "completed" and (record["model"], record["processed"]) != ("completed", RECORDS):
        problems.append(f"completed with model {record['model']!r}, processed {record['processed']}")
    return problems


def poll(server: Server, seen: Seen, stop: threading.Event, rng: random.Random) -> None:
    """Like the page, only faster: a job's progress, then the job list, and again."""
    with server.client() as client:
        while not stop.is_set():
            with seen.lock:
                job = rng.choice(seen.jobs) if seen.jobs else None
            try:
                if job is not None:
                    answer = client.get("/api/backup/progress", params={"id": job})
                    check(answer, seen, lambda body: progress_problems(body.get("progress")))
                answer = client.get("/api/backup/jobs", params={"limit": 20})
                check(
                    answer, seen, lambda body: [] if isinstance(body.get("jobs"), list) else ["no jobs list"]
                )
            except Exception as exc:  # a poller that stops is a finding too
                seen.problem(f"no answer: {type(exc).__name__}: {exc}")
            stop.wait(rng.uniform(0.05, 0.15))


def check(answer: httpx.Response, seen: Seen, problems: Callable[[Any], list[str]]) -> None:
    where = f"{answer.request.method} {answer.request.url.path}"
    with seen.lock:
        seen.answers += 1
    if answer.status_code != 200:
        seen.problem(f"{where}: {answer.status_code} {answer.text[:200]}")
        return
    for problem in problems(answer.json()):
        seen.problem(f"{where}: {problem}")


@dataclass
class Upload:
    server: Server
    body: bytes
    chunked: bool = False
    status: int | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None

    @property
    def oversized(self) -> bool:
        return len(self.body) > LIMIT_MB << 20

    def send(self, start: threading.Barrier, seen: Seen) -> None:
        content: Any = self.body
        if self.chunked:  # no Content-Length: the limit is met while the body streams in
            content = iter([self.body[i : i + (256 << 10)] for i in range(0, len(self.body), 256 << 10)])
        start.wait()
        try:
            with self.server.client() as client:
                answer = client.post(
                    "/api/backup", content=content, headers={"content-type": "application/gzip"}
                )
            self.status, self.answer = answer.status_code, answer.json()
            if self.status == 202:  # the pollers take it up at once
                with seen.lock:
                    seen.jobs.append(self.answer["progressId"])
        except Exception as exc:  # whatever it is, the upload got no answer
            self.failure = f"{type(exc).__name__}: {exc}"


def wait_finished(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record: dict[str, Any] = client.get("/api/backup/progress", params={"id": job_id}).json()["progress"]
        if record["status"] in FINISHED:
            return record
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s")


def state_rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(f"sqlite:///{home / 'state.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


@pytest.fixture
def servers(
    request: pytest.FixtureRequest, make_db: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[list[Server], Path]]:
    """Two servers, one per database, sharing one ROWVAULT_HOME."""
    home = tmp_path / "shared-home"
    with ExitStack() as stack:
        started = [
            stack.enter_context(running_server(make_db(kind), home, env=ENV)) for kind in request.param
        ]
        yield started, home


@pytest.mark.parametrize(
    "servers",
    [("sqlite", "sqlite"), ("postgresql", "mysql")],
    indirect=True,
    ids=["sqlite", "postgresql-mariadb"],
)
def test_pollers_and_uploads_against_two_databases(
    servers: tuple[list[Server], Path], source: tuple[Path, Path]
) -> None:
    (first, second), home = servers
    source_db, backup = source
    body = backup.read_bytes()
    oversized = body * (((LIMIT_MB + 2) << 20) // len(body) + 1)  # past the limit and its 1 MB slack
    uploads = []
    for server in (first, second):
        uploads += [Upload(server, body) for _ in range(UPLOADS_PER_DATABASE - 1)]
        uploads.append(Upload(server, oversized, chunked=server is second))
    seen, stop = Seen(), threading.Event()
    pollers = [
        threading.Thread(
            target=poll, args=((first, second)[i % 2], seen, stop, random.Random(i)), daemon=True
        )
        for i in range(POLLERS)
    ]
    for thread in pollers:
        thread.start()
    start = threading.Barrier(len(uploads))
    senders = [threading.Thread(target=upload.send, args=(start, seen)) for upload in uploads]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(120)
    started = [u for u in uploads if u.status == 202]
    with first.client() as client:
        finished = {u.answer["progressId"]: wait_finished(client, u.answer["progressId"]) for u in started}
    stop.set()
    for thread in pollers:
        thread.join(30)

    assert [u.failure for u in uploads if u.failure] == [], "every upload was answered"
    for upload in uploads:
        allowed = {409, 413} if upload.oversized else {202, 409}
        assert upload.status in allowed, (upload.status, upload.answer)
        if upload.status == 409:
            assert upload.answer["error"] == "conflict" and upload.answer["progressId"], upload.answer
        if upload.status == 413:
            assert "ROWVAULT_MAX_UPLOAD_MB" in upload.answer["detail"], upload.answer
    assert started, "at least one upload won its database"
    assert {job: r["status"] for job, r in finished.items()} == {job: "completed" for job in finished}
    assert seen.problems == [], f"{len(seen.problems)} of {seen.answers} answers: {seen.problems[:5]}"
    assert seen.answers > POLLERS * 5, "the pollers did poll"

    assert state_rows(home, "SELECT target_key, job_id FROM rowvault_locks") == [], "no lock is left"
    for server in (first, second):
        with server.client() as client:
            again = client.post("/api/backup", content=body, headers={"content-type": "application/gzip"})
            assert again.status_code == 202, again.text
            assert wait_finished(client, again.json()["progressId"])["status"] == "completed"
    assert state_rows(home, "SELECT target_key, job_id FROM rowvault_locks") == []
    assert (
        state_rows(home, "SELECT id, status FROM rowvault_jobs WHERE status IN ('queued', 'running')") == []
    )
    assert list((home / "uploads").iterdir()) == [], "no upload is left waiting"
    expected = counts(f"sqlite:///{source_db}")
    for server in (first, second):
        assert counts(server.db_url) == expected, server.db_url
