"""A small upload cannot cost minutes or gigabytes, and uploads for a busy database are
turned away before their body is read.

Before the fix, a 1 MB gzip of a metadata line and 1 GiB of spaces took 407 s of CPU and
about 2.2 GB of server memory before its 400: the line reader rebuilt its buffer for every
block while no newline came (quadratic), and nothing capped a line, the decompressed size
or the compression ratio. Uploads sent while another was being received were each received,
scanned and recorded as an `error` job, because the lock was taken only once a job existed.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import rowvault
from rowvault.demo import build_demo
from rowvault.errors import BackupFileError
from rowvault.file.limits import ReadLimits
from rowvault.file.reader import BackupFile
from rowvault.jobs.store import StateStore, locks

from ..server import Server, poll_until_finished, running_server

MiB = 1 << 20
IDLE_HEADROOM_KB = 150 * 1024
"""The server's peak RSS may pass its idle RSS (about 100 MB) by this much while it refuses
a bomb: the 64 MiB line cap, the reader's blocks and slack. Before the fix: about 2.2 GB."""
ANSWER_SECONDS = 5.0
METADATA = {"format": "rowvault", "version": 1, "tables": {}}
NOTE_TABLE = {
    "columns": [
        {"name": "id", "type": "integer", "sqlType": "INTEGER", "nullable": False},
        {"name": "note", "type": "string", "sqlType": "TEXT", "nullable": True},
    ],
    "primaryKey": ["id"],
}


def metadata_line(metadata: dict[str, Any] | None = None) -> bytes:
    return b'{"metadata":' + orjson.dumps(metadata or METADATA) + b",\n"


def gzip_of(path: Path, pieces: Iterator[bytes]) -> Path:
    """Write the pieces gzip-compressed without holding them all."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        for piece in pieces:
            out.write(packer.compress(piece))
        out.write(packer.flush())
    return path


def spaces(total: int) -> Iterator[bytes]:
    block = b" " * MiB
    for _ in range(total // MiB):
        yield block


def space_bomb(path: Path, total: int) -> Path:
    """The reported shape: a metadata line, then `total` bytes of spaces and no newline."""
    return gzip_of(path, iter([metadata_line(), *spaces(total)]))


def post_gzip(client: httpx.Client, body: Any, **params: object) -> httpx.Response:
    return client.post(
        "/api/backup", params=params, content=body, headers={"content-type": "application/gzip"}
    )


def uploads_left(server_home: Path) -> list[str]:
    return sorted(p.name for p in (server_home / "uploads").glob("*"))


@pytest.fixture(scope="module")
def demo_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A normal gzip backup of a few thousand demo records."""
    folder = tmp_path_factory.mktemp("demo")
    build_demo(folder / "demo.db", 3000)
    rowvault.backup(folder / "demo.db", folder / "demo.json.gz")
    return folder / "demo.json.gz"


@pytest.fixture(scope="module")
def big_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 MiB of spaces after the metadata line, in about 400 KB."""
    return space_bomb(tmp_path_factory.mktemp("bomb") / "bomb.json.gz", 400 * MiB)


# -- the line cap, through the library and the CLI ---------------------------------------------


def test_a_bomb_of_spaces_is_refused_at_the_line_cap_holding_about_the_cap(tmp_path: Path) -> None:
    bomb = space_bomb(tmp_path / "bomb.json.gz", 48 * MiB)
    cap = 16 * MiB
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(BackupFileError) as refused:
            BackupFile(bomb, limits=ReadLimits(max_line_bytes=cap)).scan()
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert refused.value.line == 2
    assert "line 2: the line is longer than 16 MiB" in str(refused.value)
    assert elapsed < ANSWER_SECONDS
    assert peak < cap + 12 * MiB, f"held {peak / MiB:.0f} MiB for a {cap / MiB:.0f} MiB cap"


def long_record_file(path: Path, length: int) -> Path:
    """Line 1 the metadata, line 2 the table, line 3 one record of `length` bytes."""
    metadata = {**METADATA, "tables": {"notes": {**NOTE_TABLE, "count": 1}}}
    record = b'{"id":1,"note":"' + b"x" * (length - 18) + b'"}'
    return gzip_of(path, iter([metadata_line(metadata), b'"notes":[\n', record, b"\n]\n}\n"]))


def long_metadata_file(path: Path, length: int) -> Path:
    metadata = {**METADATA, "padding": "x" * length}
    return gzip_of(path, iter([metadata_line(metadata), b"}\n"]))


@pytest.mark.parametrize(
    ("make", "line"), [(long_record_file, 3), (long_metadata_file, 1)], ids=["record", "metadata"]
)
def test_a_line_past_64_mib_is_a_backup_file_error_naming_the_line(
    make: Callable[[Path, int], Path], line: int, tmp_path: Path
) -> None:
    path = make(tmp_path / "long.json.gz", 64 * MiB + 100)

    with pytest.raises(BackupFileError) as scanned:
        BackupFile(path).scan()
    with pytest.raises(BackupFileError) as validated:
        rowvault.validate(tmp_path / "target.db", path)

    for refused in (scanned.value, validated.value):
        assert refused.line == line
        assert f"line {line}: the line is longer than 64 MiB" in str(refused)


def test_the_cli_says_which_line_is_too_long_in_one_line(tmp_path: Path) -> None:
    path = long_record_file(tmp_path / "long.json.gz", 64 * MiB + 100)

    done = subprocess.run(
        [sys.executable, "-m", "rowvault.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )

    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 1, lines
    assert len(lines) == 1, lines  # no traceback
    assert lines[0].startswith(f"error: {path}, line 3: the line is longer than 64 MiB")


# -- linear time -------------------------------------------------------------------------------


def one_long_line_lines(path: Path, length: int) -> Path:
    """rowvault's layout, plain (no gzip to dilute the reading): one record of `length`."""
    metadata = {**METADATA, "tables": {"notes": {**NOTE_TABLE, "count": 1}}}
    record = b'{"id":1,"note":"' + b"x" * length + b'"}'
    path.write_bytes(metadata_line(metadata) + b'"notes":[\n' + record + b"\n]\n}\n")
    return path


def one_long_line_json(path: Path, length: int) -> Path:
    """Another JSON layout, read by the incremental parser: one value of `length`."""
    path.write_bytes(b'{"notes": [{"id": 1, "note": "' + b"x" * length + b'"}]}')
    return path


@pytest.mark.parametrize("make", [one_long_line_lines, one_long_line_json], ids=["lines", "json"])
def test_scanning_a_long_line_takes_linear_time(make: Callable[[Path, int], Path], tmp_path: Path) -> None:
    n = 8 * MiB
    limits = ReadLimits(max_line_bytes=16 * n)  # above both sizes

    def cpu_seconds(length: int) -> float:
        path = make(tmp_path / f"long-{length}.json", length)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            summary = BackupFile(path, limits=limits).scan()
            best = min(best, time.process_time() - started)
        assert summary.total == 1
        path.unlink()
        return best

    short, long = cpu_seconds(n), cpu_seconds(8 * n)

    # linear: 8x the time; quadratic: 64x - a wide margin for a noisy machine between them
    assert long <= 24 * short, (
        f"{n >> 20} MiB: {short:.3f} s, {8 * n >> 20} MiB: {long:.3f} s (quadratic: 64x)"
    )


# -- other JSON layouts ------------------------------------------------------------------------


def test_a_record_of_many_small_members_past_the_cap_is_refused(tmp_path: Path) -> None:
    record = orjson.dumps({f"column_{i}": i for i in range(200_000)})  # 4 MB, no long value
    path = tmp_path / "wide.json"
    path.write_bytes(b'{"notes": [' + record + b"]}")

    with pytest.raises(BackupFileError) as refused:
        BackupFile(path, limits=ReadLimits(max_line_bytes=MiB)).scan()

    assert "record #1 is longer than 1 MiB" in str(refused.value)
    assert refused.value.table == "notes"


def test_a_one_line_document_longer_than_the_cap_is_read_as_json(tmp_path: Path) -> None:
    records = [{"id": i, "note": "n" * 100} for i in range(30_000)]  # 3.5 MB on one line
    path = tmp_path / "one-line.json"
    path.write_bytes(orjson.dumps({"metadata": {"version": "1.0"}, "notes": records}))

    summary = BackupFile(path, limits=ReadLimits(max_line_bytes=MiB)).scan()

    assert summary.layout == "json" and summary.tables["notes"].count == 30_000


def test_spaces_inside_a_json_body_are_refused_at_the_cap(tmp_path: Path) -> None:
    path = gzip_of(tmp_path / "wrapped.json.gz", iter([b'{"backupData": ', *spaces(48 * MiB)]))
    started = time.monotonic()

    with pytest.raises(BackupFileError) as refused:
        BackupFile(path, limits=ReadLimits(max_line_bytes=16 * MiB)).scan()

    assert "more than 16 MiB without a complete JSON value" in str(refused.value)
    assert time.monotonic() - started < ANSWER_SECONDS


# -- the HTTP service --------------------------------------------------------------------------


def idle_rss_kb(server: Server) -> int:
    with server.client() as client:
        client.get("/api/backup/jobs")
    return server.rss_kb()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "refused as a compression bomb"),
        ({"ROWVAULT_MAX_RATIO": "1000000"}, "line 2: the line is longer than 64 MiB"),
    ],
    ids=["ratio", "line"],
)
def test_the_server_refuses_a_bomb_fast_and_small(
    env: dict[str, str], words: str, big_bomb: Path, demo_backup: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with running_server(tmp_path / "target.db", home, env=env) as server, server.client() as client:
        idle = idle_rss_kb(server)
        started = time.monotonic()
        refused = post_gzip(client, big_bomb.read_bytes())
        elapsed = time.monotonic() - started
        peak = server.rss_kb("VmHWM")
        jobs = client.get("/api/backup/jobs").json()["jobs"]
        left = uploads_left(home)
        after = post_gzip(client, demo_backup.read_bytes(), wait="true")

    assert refused.status_code == 400, refused.text
    assert words in refused.json()["detail"]
    assert elapsed < ANSWER_SECONDS, f"answered in {elapsed:.1f} s"
    assert peak < idle + IDLE_HEADROOM_KB, f"idle {idle >> 10} MB, peak {peak >> 10} MB"
    assert jobs == [] and left == []
    assert after.status_code == 200 and after.json()["success"] is True  # the lock was released


def ratio_bomb(path: Path, records: int) -> Path:
    """A well-formed backup of identical records: 200 MiB that gzip makes 1000 times smaller."""
    metadata = {**METADATA, "tables": {"notes": {**NOTE_TABLE, "count": records}}}
    line = b'{"id":1,"note":"' + b"a" * 180 + b'"},\n'

    def pieces() -> Iterator[bytes]:
        yield metadata_line(metadata) + b'"notes":[\n'
        block = line * 1000
        for _ in range(records // 1000 - 1):
            yield block
        yield line * 999 + line[:-2] + b"\n]\n}\n"

    return gzip_of(path, pieces())


def test_a_ratio_bomb_is_refused_with_the_ratio_setting_and_a_normal_backup_is_not(
    demo_backup: Path, tmp_path: Path
) -> None:
    bomb = ratio_bomb(tmp_path / "ratio.json.gz", 1_000_000)
    home = tmp_path / "home"
    env = {"ROWVAULT_MAX_RATIO": "100"}
    with running_server(tmp_path / "target.db", home, env=env) as server, server.client() as client:
        refused = post_gzip(client, bomb.read_bytes())
        left = uploads_left(home)
        accepted = post_gzip(client, demo_backup.read_bytes(), wait="true")

    assert refused.status_code == 400, refused.text
    assert "more than 100 times" in refused.json()["detail"]
    assert "refused as a compression bomb" in refused.json()["detail"]
    assert left == []
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["success"] is True and accepted.json()["processed"] == 3000


def test_an_upload_expanding_past_the_size_setting_is_refused(demo_backup: Path, tmp_path: Path) -> None:
    assert len(gzip.decompress(demo_backup.read_bytes())) < MiB
    too_big = ratio_bomb(tmp_path / "two-mib.json.gz", 10_000)  # 2 MB once decompressed
    env = {"ROWVAULT_MAX_EXPANDED_MB": "1"}
    with (
        running_server(tmp_path / "target.db", tmp_path / "home", env=env) as server,
        server.client() as client,
    ):
        refused = post_gzip(client, too_big.read_bytes())
        accepted = post_gzip(client, demo_backup.read_bytes())

    assert refused.status_code == 400, refused.text
    assert "expands past 1 MiB when decompressed" in refused.json()["detail"]
    assert accepted.status_code == 202, accepted.text


# -- one upload at a time per database ---------------------------------------------------------


def test_a_lock_without_a_job_holds_while_it_is_fresh(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert store.try_lock("db", "receiving", stale_after=15) is None
        assert store.try_lock("db", "other", stale_after=15) == "receiving"
        assert store.touch_lock("db", "receiving")
        with store.engine.begin() as conn:  # its process died long ago
            conn.execute(locks.update().values(acquired_at=time.time() - 3600))
        assert store.try_lock("db", "other", stale_after=15) is None
        assert store.lock_holder("db") == "other"
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_of_six_requests_taking_a_free_lock_one_wins_and_five_are_told_who(
    kind: str, make_db: Callable[[str], str]
) -> None:
    store = StateStore(make_db(kind))
    outcomes: list[str | None] = []
    failures: list[BaseException] = []
    try:
        for round_ in range(10):
            start = threading.Barrier(6)

            def take(job_id: str, target: str = f"db{round_}", start: threading.Barrier = start) -> None:
                start.wait()
                try:
                    outcomes.append(store.try_lock(target, job_id, stale_after=15))
                except Exception as exc:  # PostgreSQL, before: the transaction was aborted
                    failures.append(exc)

            takers = [threading.Thread(target=take, args=(f"job{i}",)) for i in range(6)]
            for taker in takers:
                taker.start()
            for taker in takers:
                taker.join()
    finally:
        store.close()

    assert failures == []
    assert outcomes.count(None) == 10
    assert all(holder is None or holder.startswith("job") for holder in outcomes)


def busy_answers(server: Server, body: bytes, count: int = 5) -> list[tuple[httpx.Response, float]]:
    """`count` uploads at the same time, each with the seconds it took to be answered."""

    def one(_: int) -> tuple[httpx.Response, float]:
        with server.client() as client:
            started = time.monotonic()
            answer = post_gzip(client, body)
            return answer, time.monotonic() - started

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_uploads_for_a_busy_database_get_409_at_once_and_leave_nothing(
    demo_backup: Path, tmp_path: Path
) -> None:
    body = demo_backup.read_bytes()
    home = tmp_path / "home"
    slow = {"RESTORE_BATCH_SIZE": "100", "RESTORE_BATCH_DELAY_MS": "100"}  # 30 batches, 3 s or more
    release = threading.Event()

    def held_back() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        release.wait(60)
        yield body[len(body) // 2 :]

    with running_server(tmp_path / "target.db", home, env=slow) as server, server.client() as client:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post_gzip, client, held_back())
            deadline = time.monotonic() + 30
            while not uploads_left(home) and time.monotonic() < deadline:
                time.sleep(0.02)
            receiving = uploads_left(home)
            while_received = busy_answers(server, body)
            left_while_received = uploads_left(home)
            release.set()
            started = first.result(timeout=60)
        job_id = started.json()["progressId"]
        while_running = busy_answers(server, body)
        running = client.get(f"/api/backup/jobs/{job_id}").json()["status"]
        jobs = [job["id"] for job in client.get("/api/backup/jobs").json()["jobs"]]
        left_while_running = uploads_left(home)
        poll_until_finished(client, job_id)
        again = post_gzip(client, body)
        poll_until_finished(client, again.json()["progressId"])

    assert receiving == [f"{job_id}.upload"]
    assert started.status_code == 202, started.text
    for answer, seconds in while_received + while_running:
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "conflict" and answer.json()["progressId"] == job_id
        assert seconds < 2.0, f"answered in {seconds:.1f} s"
    assert running in ("queued", "running")
    assert jobs == [job_id]
    assert left_while_received == left_while_running == [f"{job_id}.upload"]
    assert again.status_code == 202, again.text


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_client_that_goes_away_mid_upload_frees_the_database(demo_backup: Path, tmp_path: Path) -> None:
    body = demo_backup.read_bytes()
    home = tmp_path / "home"
    with running_server(tmp_path / "target.db", home) as server, server.client() as client:
        address = server.url.removeprefix("http://")
        host, port = address.split(":")
        with socket.create_connection((host, int(port))) as sock:
            head = f"POST /api/backup HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/gzip\r\n"
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
            receiving = wait_for(lambda: bool(uploads_left(home)))
        gone = wait_for(lambda: not uploads_left(home))
        after = post_gzip(client, body, wait="true")

    assert receiving, "the server never started receiving"
    assert gone, "the upload file was left behind"
    assert after.status_code == 200, after.text
